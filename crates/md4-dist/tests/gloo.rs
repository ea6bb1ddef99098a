#![allow(unsafe_code)] // one signal(2) call: a rank deaf to SIGTERM
//! Two processes on 127.0.0.1 through c10d's Gloo: the collectives give the right values, a
//! bucketed reduction equals the per-tensor one, and a rank that dies makes the other fail with
//! an error naming it, within the timeout. The test binary re-runs itself as each rank
//! (`MD4_DIST_TEST_WORKER` names the worker body).

use md4_dist::launch::{LaunchOptions, RankExit, launch};
use md4_dist::{Backend, DistEnv, ProcessGroup, bucket};
use std::ffi::OsString;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Run `worker` (inside test `test`) as `n` ranks of this test binary through the launcher;
/// `agent_store`: the launcher hosts the store (torchrun's agent), else rank 0 does.
fn spawn(test: &str, worker: &str, n: usize, agent_store: bool) -> Vec<RankExit> {
    let args = ["--exact", test, "--nocapture", "--test-threads=1"].map(OsString::from).to_vec();
    let mut opts = LaunchOptions::new(n, std::env::current_exe().unwrap(), args);
    opts.env = vec![("MD4_DIST_TEST_WORKER".into(), worker.into())];
    (opts.timeout, opts.grace, opts.capture, opts.agent_store) = (TIMEOUT, TIMEOUT, true, agent_store);
    launch(&opts, &|| false).unwrap().ranks
}

fn join() -> ProcessGroup {
    let env = DistEnv::from_env().unwrap().expect("started as a rank");
    ProcessGroup::init(&env, Backend::Gloo, Device::Cpu, TIMEOUT).unwrap()
}

fn values<T>(t: &Tensor) -> Vec<T>
where
    for<'a> Vec<T>: TryFrom<&'a Tensor, Error = tch::TchError>,
{
    Vec::<T>::try_from(&t.reshape([-1])).unwrap()
}

fn collectives_worker() {
    let g = join();
    let r = g.rank() as f32;
    assert_eq!((g.size(), g.backend_name()), (2, "gloo"));
    // all-reduce: sums of rank-dependent values, in f32, f64 and i64.
    let t = Tensor::from_slice(&[r + 1.0, 10.0 * (r + 1.0), -0.5]);
    g.all_reduce_sum(&t).unwrap();
    assert_eq!(values::<f32>(&t), vec![3.0, 30.0, -1.0]);
    let t = Tensor::from_slice(&[0.1f64 * (r as f64 + 1.0)]);
    g.all_reduce_sum(&t).unwrap();
    assert_eq!(values::<f64>(&t), vec![0.1 + 0.2]);
    let t = Tensor::from_slice(&[1i64 << (40 + g.rank())]);
    g.all_reduce_sum(&t).unwrap();
    assert_eq!(values::<i64>(&t), vec![(1i64 << 40) + (1i64 << 41)]);
    // broadcast from rank 1.
    let t = Tensor::from_slice(&[r, r * r, 7.0]).reshape([3, 1]);
    g.broadcast(&t, 1).unwrap();
    assert_eq!(values::<f32>(&t), vec![1.0, 1.0, 7.0]);
    // bucketed: several tensors and kinds through 64-byte buckets equal one reduction each.
    tch::manual_seed(100 + g.rank() as i64);
    let ts: Vec<Tensor> = [vec![3, 5], vec![17], vec![2, 2, 2], vec![40]]
        .into_iter()
        .map(|s| Tensor::randn(s.as_slice(), (Kind::Float, Device::Cpu)))
        .chain([Tensor::randn([6], (Kind::Double, Device::Cpu))])
        .collect();
    let singles: Vec<Tensor> = ts.iter().map(|t| t.copy()).collect();
    for t in &singles {
        g.all_reduce_sum(t).unwrap();
    }
    bucket::all_reduce_sum(&g, &ts, 64).unwrap();
    for (a, b) in ts.iter().zip(&singles) {
        assert!(a.equal(b), "bucketed and single reductions differ");
    }
    bucket::broadcast(&g, &ts, 0, 64).unwrap();
    let mut sums: Vec<f64> = ts.iter().map(|t| t.abs().sum(Kind::Double).double_value(&[])).collect();
    let local = sums.clone();
    g.sum_f64(&mut sums).unwrap();
    for (s, l) in sums.iter().zip(&local) {
        assert_eq!(*s, 2.0 * l, "after a broadcast both ranks hold the same tensors");
    }
    g.barrier().unwrap();
    println!("worker {} ok", g.rank());
}

#[test]
fn gloo_collectives_across_two_processes() {
    match std::env::var("MD4_DIST_TEST_WORKER").as_deref() {
        Ok("collectives") => return collectives_worker(),
        Ok(_) => return,
        Err(_) => {}
    }
    for agent_store in [true, false] {
        let outs = spawn("gloo_collectives_across_two_processes", "collectives", 2, agent_store);
        for (r, o) in outs.iter().enumerate() {
            assert!(o.status.success(), "rank {r} (agent store {agent_store}) failed:\n{}", o.output);
            assert!(o.output.contains(&format!("worker {r} ok")), "{}", o.output);
        }
    }
}

fn dying_worker() {
    // Deaf to the launcher's SIGTERM, as a rank on another node is: it must find out itself.
    // SAFETY: installing SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    let env = DistEnv::from_env().unwrap().unwrap();
    let g = ProcessGroup::init(&env, Backend::Gloo, Device::Cpu, Duration::from_secs(8)).unwrap();
    if g.rank() == 1 {
        std::process::exit(17); // dies without a word, as a killed rank does
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let t = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    let e = g.all_reduce_sum(&t).and_then(|_| g.barrier()).unwrap_err();
    println!("rank 0 failed after {:.2} s: {e:#}", start.elapsed().as_secs_f64());
    std::process::exit(3);
}

#[test]
fn a_dead_rank_fails_the_other_with_a_clear_error_within_the_timeout() {
    match std::env::var("MD4_DIST_TEST_WORKER").as_deref() {
        Ok("dying") => return dying_worker(),
        Ok(_) => return,
        Err(_) => {}
    }
    let start = Instant::now();
    let outs = spawn("a_dead_rank_fails_the_other_with_a_clear_error_within_the_timeout", "dying", 2, false);
    let elapsed = start.elapsed();
    assert_eq!(outs[1].code(), 17, "{}", outs[1].output);
    let t0 = &outs[0].output;
    assert_eq!(outs[0].code(), 3, "rank 0 must fail cleanly, not abort:\n{t0}");
    assert!(t0.contains("rank 0 of 2 (gloo)"), "the error names the rank:\n{t0}");
    assert!(elapsed < Duration::from_secs(8 + 15), "took {elapsed:?}");
    eprintln!("{}", t0.lines().find(|l| l.contains("failed after")).unwrap_or(""));
}

#[test]
fn an_unreachable_store_is_a_clear_error() {
    if std::env::var("MD4_DIST_TEST_WORKER").is_ok() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = DistEnv {
        rank: 1,
        world_size: 2,
        local_rank: 1,
        local_world_size: 2,
        master_addr: "127.0.0.1".into(),
        master_port: port,
        agent_store: false,
        launcher: "torchrun",
        restart_count: 0,
    };
    let e = ProcessGroup::init(&env, Backend::Gloo, Device::Cpu, Duration::from_secs(2)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("rank 1 of 2") && msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}
