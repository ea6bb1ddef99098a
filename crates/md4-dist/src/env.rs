//! Where this process sits in a multi-process job, read from the variables the launchers set:
//! torchrun (and `md4 launch`, which sets the same ones) — `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE` — or SLURM's
//! `srun` — `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`, with
//! `MASTER_ADDR` exported by the batch script.

use anyhow::{Context, Result, bail, ensure};

/// The default store port (torchrun's and c10d's).
pub const DEFAULT_PORT: u16 = 29500;

/// A process's place in a data-parallel job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    /// Host of the TCP store (rank 0's machine, or torchrun's agent).
    pub master_addr: String,
    pub master_port: u16,
    /// True when the launcher already hosts the store (torchrun's agent, `md4 launch`): every
    /// rank then connects as a client.
    pub agent_store: bool,
    /// Which launcher's variables were read: "torchrun" or "slurm".
    pub launcher: &'static str,
    /// torchrun's `TORCHELASTIC_RESTART_COUNT`: the store outlives a restarted attempt, so every
    /// attempt uses its own key prefix.
    pub restart_count: u32,
}

impl DistEnv {
    /// Read this process's variables; `None` when it was not started as part of a job.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`DistEnv::from_env`] over any variable lookup (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let int = |k: &str| -> Result<Option<usize>> {
            var(k)
                .map(|v| v.trim().parse::<usize>().with_context(|| format!("{k}={v:?} is not a number")))
                .transpose()
        };
        let port = match var("MASTER_PORT") {
            Some(p) => {
                p.trim().parse::<u16>().with_context(|| format!("MASTER_PORT={p:?} is not a port number"))?
            }
            None => DEFAULT_PORT,
        };
        if let Some(world_size) = int("WORLD_SIZE")? {
            let rank = int("RANK")?
                .context("WORLD_SIZE is set but RANK is not (start ranks with torchrun or `md4 launch`)")?;
            let local_rank = int("LOCAL_RANK")?.unwrap_or(rank);
            let local_world_size = int("LOCAL_WORLD_SIZE")?.unwrap_or(world_size);
            let env = Self {
                rank,
                world_size,
                local_rank,
                local_world_size,
                master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
                master_port: port,
                agent_store: var("TORCHELASTIC_USE_AGENT_STORE")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                launcher: "torchrun",
                restart_count: int("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0) as u32,
            };
            return env.checked().map(Some);
        }
        if let (Some(rank), Some(world_size)) = (int("SLURM_PROCID")?, int("SLURM_NTASKS")?) {
            if world_size <= 1 {
                return Ok(None);
            }
            let Some(master_addr) = var("MASTER_ADDR") else {
                bail!(
                    "SLURM started {world_size} tasks but MASTER_ADDR is not set: export it in the batch script, e.g. \
                     export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)"
                );
            };
            // SLURM_NTASKS_PER_NODE reads like "4" or "4(x2)".
            let per_node = var("SLURM_NTASKS_PER_NODE")
                .and_then(|v| v.split(['(', ',']).next().and_then(|n| n.trim().parse::<usize>().ok()));
            let env = Self {
                rank,
                world_size,
                local_rank: int("SLURM_LOCALID")?.unwrap_or(0),
                local_world_size: per_node.unwrap_or(1),
                master_addr,
                master_port: port,
                agent_store: false,
                launcher: "slurm",
                restart_count: 0,
            };
            return env.checked().map(Some);
        }
        Ok(None)
    }

    fn checked(self) -> Result<Self> {
        ensure!(self.world_size >= 1, "WORLD_SIZE must be at least 1");
        ensure!(
            self.rank < self.world_size,
            "rank {} is not below the world size {}",
            self.rank,
            self.world_size
        );
        ensure!(
            self.local_rank < self.local_world_size.max(1),
            "local rank {} is not below the local world size {}",
            self.local_rank,
            self.local_world_size
        );
        Ok(self)
    }

    /// The store prefix of this attempt's keys.
    pub fn store_prefix(&self) -> String {
        format!("md4/attempt_{}/", self.restart_count)
    }

    /// True for the store's host being this machine's loopback address.
    pub fn is_loopback(&self) -> bool {
        self.master_addr == "localhost" || self.master_addr.starts_with("127.") || self.master_addr == "::1"
    }

    /// The variables a launcher sets for local rank `local_rank` of `nproc` (torchrun's names).
    pub fn launcher_vars(nproc: usize, local_rank: usize, port: u16) -> Vec<(String, String)> {
        [
            ("RANK", local_rank.to_string()),
            ("LOCAL_RANK", local_rank.to_string()),
            ("WORLD_SIZE", nproc.to_string()),
            ("LOCAL_WORLD_SIZE", nproc.to_string()),
            ("GROUP_RANK", "0".to_string()),
            ("MASTER_ADDR", "127.0.0.1".to_string()),
            ("MASTER_PORT", port.to_string()),
            ("TORCHELASTIC_USE_AGENT_STORE", "True".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<DistEnv>> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DistEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn torchrun_variables() {
        let env = read(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "node7"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((env.rank, env.world_size, env.local_rank, env.local_world_size), (3, 8, 1, 2));
        assert_eq!((env.master_addr.as_str(), env.master_port, env.agent_store), ("node7", 29400, true));
        assert_eq!(env.store_prefix(), "md4/attempt_2/");
        assert!(!env.is_loopback());
    }

    #[test]
    fn slurm_variables_and_their_errors() {
        let env = read(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
            ("MASTER_ADDR", "10.0.0.1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((env.rank, env.world_size, env.local_rank, env.local_world_size), (5, 8, 1, 4));
        assert_eq!((env.master_port, env.agent_store, env.launcher), (DEFAULT_PORT, false, "slurm"));
        let e = read(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]).unwrap_err();
        assert!(format!("{e:#}").contains("MASTER_ADDR"), "{e:#}");
        assert_eq!(read(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]).unwrap(), None);
        // torchrun's variables win inside an allocation.
        let env = read(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2"), ("RANK", "1"), ("WORLD_SIZE", "2")])
            .unwrap()
            .unwrap();
        assert_eq!((env.rank, env.launcher), (1, "torchrun"));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(read(&[]).unwrap(), None);
        for (pairs, needle) in [
            (vec![("RANK", "2"), ("WORLD_SIZE", "2")], "rank 2 is not below"),
            (vec![("RANK", "x"), ("WORLD_SIZE", "2")], "RANK=\"x\""),
            (vec![("WORLD_SIZE", "2")], "RANK is not"),
            (vec![("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "70000")], "MASTER_PORT"),
        ] {
            let e = read(&pairs).unwrap_err();
            assert!(format!("{e:#}").contains(needle), "{e:#} lacks {needle}");
        }
    }

    #[test]
    fn launcher_variables_round_trip() {
        let vars = DistEnv::launcher_vars(4, 2, 41234);
        let map: HashMap<String, String> = vars.into_iter().collect();
        let env = DistEnv::from_vars(|k| map.get(k).cloned()).unwrap().unwrap();
        assert_eq!((env.rank, env.world_size, env.local_rank, env.master_port), (2, 4, 2, 41234));
        assert!(env.agent_store && env.is_loopback());
    }
}
