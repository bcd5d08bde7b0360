//! The admission rule: whether a worker takes a job, judged on the caps it advertises
//! in `hello` (`Capabilities`). Both sides apply this one rule: the worker to every
//! `assign` it gets (it answers `refused` when the job fails it), the coordinator
//! before it assigns, so a worker that advertised its caps truthfully refuses
//! nothing but what the two sides disagree on (memory the worker still holds for a
//! job the coordinator already counts as ended). docs/worker.md describes the caps.

use crate::protocol::Capabilities;
use thiserror::Error;

/// Why a job is past a worker's caps. Its text is the `reason` a worker sends in
/// `refused`, which the job's owner reads, so it names the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Inadmissible {
    /// A job with no memory limit would run without one: never.
    #[error(
        "the job asks for no memory (memory_mb = 0); this worker runs nothing without a memory limit"
    )]
    NoMemory,
    #[error("the job asks for {asked} MB of memory, more than this worker's {cap} MB per job")]
    MemoryOverCap { asked: u32, cap: u32 },
    #[error(
        "the job asks for {asked} MB of memory and the jobs running on this worker already hold {in_use} MB of its {budget} MB"
    )]
    OverBudget {
        asked: u32,
        in_use: u64,
        budget: u64,
    },
    #[error("the job's timeout of {asked} s is longer than this worker's {cap} s")]
    TimeoutOverCap { asked: u32, cap: u32 },
    /// The GPUs the assignment names are not a valid pick here (`gpu::check_pick`).
    #[error("{0}")]
    Gpus(crate::gpu::BadPick),
}

/// A worker's admission caps, as its `hello` advertises them (`Capabilities`); a cap
/// that is `None` limits nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionCaps {
    pub max_job_memory_mb: Option<u32>,
    pub memory_budget_mb: Option<u64>,
    pub max_job_timeout_s: Option<u32>,
}

impl AdmissionCaps {
    /// Whether a worker with these caps takes a job that asks for `memory_mb` and
    /// `timeout_s` while the jobs it runs already hold `in_use_mb` of its memory
    /// budget.
    pub fn admits(
        &self,
        memory_mb: u32,
        timeout_s: u32,
        in_use_mb: u64,
    ) -> Result<(), Inadmissible> {
        if memory_mb == 0 {
            return Err(Inadmissible::NoMemory);
        }
        if let Some(cap) = self.max_job_memory_mb
            && memory_mb > cap
        {
            return Err(Inadmissible::MemoryOverCap {
                asked: memory_mb,
                cap,
            });
        }
        if let Some(budget) = self.memory_budget_mb
            && in_use_mb.saturating_add(u64::from(memory_mb)) > budget
        {
            return Err(Inadmissible::OverBudget {
                asked: memory_mb,
                in_use: in_use_mb,
                budget,
            });
        }
        if let Some(cap) = self.max_job_timeout_s
            && timeout_s > cap
        {
            return Err(Inadmissible::TimeoutOverCap {
                asked: timeout_s,
                cap,
            });
        }
        Ok(())
    }
}

impl Capabilities {
    /// The admission caps this worker advertised.
    pub fn admission(&self) -> AdmissionCaps {
        AdmissionCaps {
            max_job_memory_mb: self.max_job_memory_mb,
            memory_budget_mb: self.memory_budget_mb,
            max_job_timeout_s: self.max_job_timeout_s,
        }
    }

    /// Advertises these admission caps.
    pub fn with_admission(self, caps: AdmissionCaps) -> Self {
        Capabilities {
            max_job_memory_mb: caps.max_job_memory_mb,
            memory_budget_mb: caps.memory_budget_mb,
            max_job_timeout_s: caps.max_job_timeout_s,
            ..self
        }
    }

    /// [`AdmissionCaps::admits`] with the caps this worker advertised.
    pub fn admits(
        &self,
        memory_mb: u32,
        timeout_s: u32,
        in_use_mb: u64,
    ) -> Result<(), Inadmissible> {
        self.admission().admits(memory_mb, timeout_s, in_use_mb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ExecutorKind, MAX_REFUSAL_REASON_BYTES};

    fn caps(memory: Option<u32>, budget: Option<u64>, timeout: Option<u32>) -> Capabilities {
        Capabilities {
            gpu_devices: Vec::new(),
            languages: vec![],
            slots: 4,
            executor: ExecutorKind::Docker,
            cpu_cores: 4,
            memory_mb: 8192,
            gpus: 0,
            max_job_memory_mb: None,
            memory_budget_mb: None,
            max_job_timeout_s: None,
        }
        .with_admission(AdmissionCaps {
            max_job_memory_mb: memory,
            memory_budget_mb: budget,
            max_job_timeout_s: timeout,
        })
    }

    #[test]
    fn each_cap_admits_up_to_its_edge_and_refuses_past_it() {
        let c = caps(Some(1024), Some(3072), Some(60));
        assert_eq!(c.admits(1024, 60, 2048), Ok(()));
        assert_eq!(
            c.admits(1025, 60, 0),
            Err(Inadmissible::MemoryOverCap {
                asked: 1025,
                cap: 1024
            })
        );
        assert_eq!(
            c.admits(1024, 60, 2049),
            Err(Inadmissible::OverBudget {
                asked: 1024,
                in_use: 2049,
                budget: 3072
            })
        );
        assert_eq!(
            c.admits(32, 61, 0),
            Err(Inadmissible::TimeoutOverCap { asked: 61, cap: 60 })
        );
        // A hostile sum cannot wrap around the budget.
        assert!(c.admits(32, 1, u64::MAX).is_err());
    }

    #[test]
    fn a_job_without_memory_is_never_admitted_and_absent_caps_limit_nothing() {
        let open = caps(None, None, None);
        assert_eq!(open.admits(0, 1, 0), Err(Inadmissible::NoMemory));
        assert_eq!(open.admits(u32::MAX, u32::MAX, u64::MAX), Ok(()));
    }

    /// Every reason fits a `refused` frame, at the largest numbers.
    #[test]
    fn reasons_name_the_numbers_and_fit_a_refusal() {
        let worst = [
            Inadmissible::NoMemory,
            Inadmissible::MemoryOverCap {
                asked: u32::MAX,
                cap: u32::MAX,
            },
            Inadmissible::OverBudget {
                asked: u32::MAX,
                in_use: u64::MAX,
                budget: u64::MAX,
            },
            Inadmissible::TimeoutOverCap {
                asked: u32::MAX,
                cap: u32::MAX,
            },
        ];
        for reason in worst {
            assert!(
                reason.to_string().len() <= MAX_REFUSAL_REASON_BYTES,
                "{reason}"
            );
        }
        let text = Inadmissible::OverBudget {
            asked: 512,
            in_use: 3000,
            budget: 3072,
        }
        .to_string();
        assert!(
            text.contains("512") && text.contains("3000") && text.contains("3072"),
            "{text}"
        );
    }
}
