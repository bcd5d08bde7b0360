//! Job limits, their defaults and bounds, and the validated job spec.

use crate::api::SubmitJobRequest;
use crate::language::Language;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

/// The bounds a coordinator applies to submitted jobs. The operator can change every
/// one in `[server.limits]`; the defaults are the ones docs/api.md documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobLimits {
    pub default_timeout_s: u32,
    pub min_timeout_s: u32,
    pub max_timeout_s: u32,
    pub default_memory_mb: u32,
    pub min_memory_mb: u32,
    pub max_memory_mb: u32,
    pub max_code_bytes: usize,
    pub max_stdin_bytes: usize,
    /// stdout and stderr are each kept up to this many bytes, then cut.
    pub max_output_bytes: usize,
    /// Priorities run from `-max_priority` to `max_priority`; higher runs first.
    pub max_priority: i32,
    /// The most GPUs one job may ask for; 0 refuses every GPU job.
    pub max_gpus: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            default_timeout_s: 30,
            min_timeout_s: 1,
            max_timeout_s: 300,
            default_memory_mb: 256,
            min_memory_mb: 32,
            max_memory_mb: 4096,
            max_code_bytes: 256 * 1024,
            max_stdin_bytes: 1024 * 1024,
            max_output_bytes: 1024 * 1024,
            max_priority: 100,
            max_gpus: 8,
        }
    }
}

/// A job as it will run: every limit filled in and inside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSpec {
    pub language: Language,
    pub code: String,
    #[serde(default)]
    pub stdin: String,
    pub timeout_s: u32,
    pub memory_mb: u32,
    #[serde(default)]
    pub priority: i32,
    /// The most bytes of stdout and of stderr the worker keeps.
    pub max_output_bytes: usize,
    /// GPUs the job gets (docs/jobs.md, "GPU jobs"); absent: none, and the job's
    /// sandbox has no GPU device at all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    /// The least memory, in MB, each of its GPUs must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_mb: Option<u32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobSpec {
    /// The GPUs this job asks for.
    pub fn gpu_request(&self) -> crate::gpu::GpuRequest {
        crate::gpu::GpuRequest {
            count: self.gpus,
            min_memory_mb: self.gpu_memory_mb,
        }
    }
}

/// Why a submitted job was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("{field} must be between {min} and {max}, got {got}")]
    OutOfBounds {
        field: &'static str,
        min: i64,
        max: i64,
        got: i64,
    },
    #[error("{field} is {got} bytes, more than the {max} allowed")]
    TooLarge {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error("code is empty")]
    EmptyCode,
    #[error("{field} contains a NUL byte")]
    NulByte { field: &'static str },
    #[error("gpu_memory_mb needs gpus: it is the least memory of each GPU the job asks for")]
    GpuMemoryWithoutGpus,
}

impl SpecError {
    /// Oversized payloads are 413, everything else 400.
    pub fn is_too_large(&self) -> bool {
        matches!(self, SpecError::TooLarge { .. })
    }
}

impl JobLimits {
    /// Checks a request against these bounds and fills in the defaults.
    pub fn validate(&self, req: &SubmitJobRequest) -> Result<JobSpec, SpecError> {
        if req.code.len() > self.max_code_bytes {
            return Err(SpecError::TooLarge {
                field: "code",
                max: self.max_code_bytes,
                got: req.code.len(),
            });
        }
        let stdin = req.stdin.clone().unwrap_or_default();
        if stdin.len() > self.max_stdin_bytes {
            return Err(SpecError::TooLarge {
                field: "stdin",
                max: self.max_stdin_bytes,
                got: stdin.len(),
            });
        }
        if req.code.trim().is_empty() {
            return Err(SpecError::EmptyCode);
        }
        // A NUL cannot be passed through a file name or argv and is never real code.
        if req.code.contains('\0') {
            return Err(SpecError::NulByte { field: "code" });
        }
        let timeout_s = bounded(
            "timeout_s",
            req.timeout_s.map(i64::from),
            self.default_timeout_s,
            self.min_timeout_s,
            self.max_timeout_s,
        )?;
        let memory_mb = bounded(
            "memory_mb",
            req.memory_mb.map(i64::from),
            self.default_memory_mb,
            self.min_memory_mb,
            self.max_memory_mb,
        )?;
        let priority = req.priority.unwrap_or(0);
        if priority.unsigned_abs() > self.max_priority.unsigned_abs() {
            return Err(SpecError::OutOfBounds {
                field: "priority",
                min: -i64::from(self.max_priority),
                max: i64::from(self.max_priority),
                got: i64::from(priority),
            });
        }
        let gpus = req.gpus.unwrap_or(0);
        let most = self.max_gpus.min(crate::gpu::MAX_LENT_GPUS as u32);
        if gpus > most {
            return Err(SpecError::OutOfBounds {
                field: "gpus",
                min: 0,
                max: i64::from(most),
                got: i64::from(gpus),
            });
        }
        if gpus == 0 && req.gpu_memory_mb.is_some() {
            return Err(SpecError::GpuMemoryWithoutGpus);
        }
        if let Some(mb) = req.gpu_memory_mb
            && mb == 0
        {
            return Err(SpecError::OutOfBounds {
                field: "gpu_memory_mb",
                min: 1,
                max: i64::from(u32::MAX),
                got: 0,
            });
        }
        Ok(JobSpec {
            language: req.language,
            code: req.code.clone(),
            stdin,
            timeout_s,
            memory_mb,
            priority,
            max_output_bytes: self.max_output_bytes,
            gpus,
            gpu_memory_mb: req.gpu_memory_mb,
        })
    }

    /// Checks that the bounds make sense together, for config loading.
    pub fn check(&self) -> Result<(), String> {
        let ordered = |name: &str, min: u32, default: u32, max: u32| {
            if min == 0 || min > default || default > max {
                Err(format!(
                    "{name}: need 0 < min ({min}) <= default ({default}) <= max ({max})"
                ))
            } else {
                Ok(())
            }
        };
        ordered(
            "timeout_s",
            self.min_timeout_s,
            self.default_timeout_s,
            self.max_timeout_s,
        )?;
        ordered(
            "memory_mb",
            self.min_memory_mb,
            self.default_memory_mb,
            self.max_memory_mb,
        )?;
        if self.max_code_bytes == 0 || self.max_output_bytes == 0 {
            return Err("max_code_bytes and max_output_bytes must be positive".into());
        }
        if self.max_priority < 0 {
            return Err("max_priority must not be negative".into());
        }
        if self.max_gpus as usize > crate::gpu::MAX_LENT_GPUS {
            return Err(format!(
                "max_gpus: at most {} (the most GPUs a worker may lend)",
                crate::gpu::MAX_LENT_GPUS
            ));
        }
        Ok(())
    }
}

fn bounded(
    field: &'static str,
    value: Option<i64>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, SpecError> {
    let got = value.unwrap_or(i64::from(default));
    if got < i64::from(min) || got > i64::from(max) {
        return Err(SpecError::OutOfBounds {
            field,
            min: i64::from(min),
            max: i64::from(max),
            got,
        });
    }
    // In range of two u32 bounds, so it fits.
    Ok(u32::try_from(got).unwrap_or(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(code: &str) -> SubmitJobRequest {
        SubmitJobRequest {
            language: Language::Python,
            code: code.into(),
            stdin: None,
            timeout_s: None,
            memory_mb: None,
            priority: None,
            validate: None,
            gpus: None,
            gpu_memory_mb: None,
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let spec = JobLimits::default().validate(&req("print(1)")).unwrap();
        assert_eq!(spec.timeout_s, 30);
        assert_eq!(spec.memory_mb, 256);
        assert_eq!(spec.priority, 0);
        assert_eq!(spec.max_output_bytes, 1024 * 1024);
    }

    #[test]
    fn bounds_are_enforced() {
        let limits = JobLimits::default();
        let mut r = req("x");
        r.timeout_s = Some(0);
        assert!(matches!(
            limits.validate(&r),
            Err(SpecError::OutOfBounds {
                field: "timeout_s",
                ..
            })
        ));
        r.timeout_s = Some(301);
        assert!(limits.validate(&r).is_err());
        r.timeout_s = Some(300);
        r.memory_mb = Some(31);
        assert!(limits.validate(&r).is_err());
        r.memory_mb = Some(4096);
        assert!(limits.validate(&r).is_ok());
        r.priority = Some(101);
        assert!(limits.validate(&r).is_err());
    }

    #[test]
    fn sizes_are_enforced_as_too_large() {
        let limits = JobLimits::default();
        let err = limits
            .validate(&req(&"x".repeat(256 * 1024 + 1)))
            .unwrap_err();
        assert!(err.is_too_large());
        let mut r = req("x");
        r.stdin = Some("y".repeat(1024 * 1024 + 1));
        assert!(limits.validate(&r).unwrap_err().is_too_large());
        assert_eq!(limits.validate(&req("  \n")), Err(SpecError::EmptyCode));
        assert!(limits.validate(&req("a\0b")).is_err());
    }

    #[test]
    fn default_limits_are_consistent() {
        assert_eq!(JobLimits::default().check(), Ok(()));
        let bad = JobLimits {
            min_timeout_s: 50,
            ..JobLimits::default()
        };
        assert!(bad.check().is_err());
    }

    proptest! {
        #[test]
        fn accepted_specs_are_always_in_bounds(t in proptest::option::of(0u32..1000), m in proptest::option::of(0u32..10000), p in proptest::option::of(-500i32..500)) {
            let limits = JobLimits::default();
            let mut r = req("print(1)");
            r.timeout_s = t;
            r.memory_mb = m;
            r.priority = p;
            if let Ok(spec) = limits.validate(&r) {
                prop_assert!((1..=300).contains(&spec.timeout_s));
                prop_assert!((32..=4096).contains(&spec.memory_mb));
                prop_assert!(spec.priority.abs() <= 100);
            } else {
                let t_ok = t.is_none_or(|t| (1..=300).contains(&t));
                let m_ok = m.is_none_or(|m| (32..=4096).contains(&m));
                let p_ok = p.is_none_or(|p| p.abs() <= 100);
                prop_assert!(!(t_ok && m_ok && p_ok));
            }
        }
    }
}
