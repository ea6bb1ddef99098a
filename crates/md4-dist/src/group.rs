//! A process group: this rank's handle on the collectives of a job — Gloo (CPU tensors) through
//! c10d's `ProcessGroupGloo`, NCCL (CUDA tensors) through NCCL's C API — and the world of one,
//! where every collective is the identity. Every failure is an error that names the rank.

use crate::env::DistEnv;
use crate::ffi::{self, RawGroup};
use crate::nccl;
use crate::store::Store;
use anyhow::{Context, Result, bail, ensure};
use std::ffi::CString;
use std::time::Duration;
use tch::{Device, Kind, Tensor};

/// Which engine carries the collectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    /// PyTorch's default: NCCL for CUDA devices, Gloo otherwise.
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() { Self::Nccl } else { Self::Gloo }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gloo" => Ok(Self::Gloo),
            "nccl" => Ok(Self::Nccl),
            other => bail!("unknown distributed backend '{other}' (expected gloo or nccl)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl => "nccl",
        }
    }
}

enum Inner {
    Single,
    Gloo(*mut RawGroup),
    Nccl(nccl::Comm),
}

/// This rank's process group.
pub struct ProcessGroup {
    rank: usize,
    size: usize,
    device: Device,
    backend: Option<Backend>,
    inner: Inner,
    /// Kept alive for the group's lifetime (the Gloo group and NCCL's rendezvous use it).
    _store: Option<Store>,
}

// SAFETY: the group is used from one thread at a time (`&self` methods run collectives that c10d
// and NCCL serialise internally); the raw pointers are owned.
unsafe impl Send for ProcessGroup {}
// SAFETY: as above.
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {}, {})", self.rank, self.size, self.backend_name())
    }
}

impl ProcessGroup {
    /// The world of one process: every collective returns its input.
    pub fn single(device: Device) -> Self {
        Self { rank: 0, size: 1, device, backend: None, inner: Inner::Single, _store: None }
    }

    /// Join the job described by `env`: connect to (or host) the TCP store, then build the
    /// `backend` group for tensors on `device`. Store operations and collectives fail after
    /// `timeout` instead of hanging.
    pub fn init(env: &DistEnv, backend: Backend, device: Device, timeout: Duration) -> Result<Self> {
        let who = format!("rank {} of {}", env.rank, env.world_size);
        let server = env.rank == 0 && !env.agent_store;
        let store = Store::tcp(
            &env.master_addr,
            env.master_port,
            server,
            Some(env.world_size),
            timeout,
            &env.store_prefix(),
        )
        .with_context(|| format!("{who}: joining the job"))?;
        let inner = match backend {
            Backend::Gloo => {
                ensure!(!device.is_cuda(), "{who}: Gloo carries CPU tensors here; use NCCL for {device:?}");
                let interface = std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default();
                let hostname = if env.is_loopback() { "127.0.0.1".to_string() } else { String::new() };
                let (c_if, c_host) = (CString::new(interface)?, CString::new(hostname)?);
                let mut raw = std::ptr::null_mut();
                ffi::check(|err| {
                    // SAFETY: the store is live; C strings and out-pointer valid during the call.
                    unsafe {
                        ffi::md4d_gloo_new(
                            store.raw(),
                            env.rank as i32,
                            env.world_size as i32,
                            c_if.as_ptr(),
                            c_host.as_ptr(),
                            timeout.as_millis() as i64,
                            2,
                            &mut raw,
                            err,
                        )
                    }
                })
                .with_context(|| format!("{who}: connecting the Gloo process group"))?;
                Inner::Gloo(raw)
            }
            Backend::Nccl => {
                let Device::Cuda(index) = device else {
                    bail!("{who}: NCCL needs a CUDA device (got {device:?}); use Gloo on CPU");
                };
                Inner::Nccl(
                    nccl::Comm::new(&store, env.rank, env.world_size, index)
                        .with_context(|| format!("{who}: creating the NCCL communicator"))?,
                )
            }
        };
        Ok(Self {
            rank: env.rank,
            size: env.world_size,
            device,
            backend: Some(backend),
            inner,
            _store: Some(store),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn size(&self) -> usize {
        self.size
    }
    /// Rank 0: the one that writes checkpoints, metrics and progress.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }
    /// The device collectives expect tensors on.
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn backend_name(&self) -> &'static str {
        self.backend.map_or("single", Backend::name)
    }

    fn who(&self) -> String {
        format!("rank {} of {} ({})", self.rank, self.size, self.backend_name())
    }

    fn check_tensor(&self, t: &Tensor) -> Result<()> {
        ensure!(t.is_contiguous(), "{}: collectives need contiguous tensors", self.who());
        ensure!(
            t.device() == self.device,
            "{}: a tensor on {:?} was given to a group on {:?}",
            self.who(),
            t.device(),
            self.device
        );
        Ok(())
    }

    /// In-place sum of `t` over every rank.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.check_tensor(t)?;
        match &self.inner {
            Inner::Single => Ok(()),
            // SAFETY: the group is live; `t` is a live at::Tensor for the whole call.
            Inner::Gloo(raw) => ffi::check(|err| unsafe {
                ffi::md4d_allreduce_sum(*raw, t.as_ptr() as *mut std::ffi::c_void, err)
            }),
            Inner::Nccl(comm) => comm.all_reduce_sum(t),
        }
        .with_context(|| format!("{}: all-reduce of {} values", self.who(), t.numel()))
    }

    /// In-place copy of rank `root`'s `t` to every rank.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        self.check_tensor(t)?;
        match &self.inner {
            Inner::Single => Ok(()),
            // SAFETY: as in all_reduce_sum.
            Inner::Gloo(raw) => ffi::check(|err| unsafe {
                ffi::md4d_broadcast(*raw, t.as_ptr() as *mut std::ffi::c_void, root as i32, err)
            }),
            Inner::Nccl(comm) => comm.broadcast(t, root),
        }
        .with_context(|| format!("{}: broadcast from rank {root}", self.who()))
    }

    /// Wait until every rank arrives.
    pub fn barrier(&self) -> Result<()> {
        match &self.inner {
            Inner::Single => Ok(()),
            // SAFETY: the group is live.
            Inner::Gloo(raw) => ffi::check(|err| unsafe { ffi::md4d_barrier(*raw, err) }),
            Inner::Nccl(_) => {
                let t = Tensor::zeros([1], (Kind::Float, self.device));
                self.all_reduce_sum(&t)?;
                let _ = t.double_value(&[0]); // waits for the stream
                Ok(())
            }
        }
        .with_context(|| format!("{}: barrier", self.who()))
    }

    /// Sum `values` over every rank, in f64 (loss sums, counters, flags).
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        if matches!(self.inner, Inner::Single) {
            return Ok(());
        }
        let t = Tensor::from_slice(values).to_device(self.device);
        self.all_reduce_sum(&t)?;
        let out = Vec::<f64>::try_from(&t.to_device(Device::Cpu))?;
        values.copy_from_slice(&out);
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Inner::Gloo(raw) = self.inner {
            // SAFETY: created by md4d_gloo_new and freed once.
            unsafe { ffi::md4d_pg_free(raw) }
        }
    }
}
