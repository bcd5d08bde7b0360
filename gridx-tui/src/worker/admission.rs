//! Worker-side admission: the caps this worker takes jobs under (`[worker]`
//! `max_job_memory_mb`, `memory_budget_mb`, `max_job_timeout_s`), advertised in its
//! `hello` and applied to every `assign`. The rule itself is gridx-proto's
//! (`AdmissionCaps::admits`), the one the coordinator applies before it assigns; an
//! assignment that fails it anyway is answered with `refused` and never started
//! (to an older coordinator that cannot read `refused`, see [`judge`]).

use gridx_proto::JobSpec;
use gridx_proto::config::WorkerConfig;
use gridx_proto::protocol::{AdmissionCaps, Inadmissible, MAX_MEMORY_MB};

/// `[worker]`'s admission settings, before the memory budget's default is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_job_memory_mb: u32,
    /// Unset: three quarters of the host's memory.
    pub memory_budget_mb: Option<u64>,
    pub max_job_timeout_s: u32,
}

impl Settings {
    pub fn from_config(w: &WorkerConfig) -> Self {
        Self {
            max_job_memory_mb: w.max_job_memory_mb,
            memory_budget_mb: w.memory_budget_mb,
            max_job_timeout_s: w.max_job_timeout_s,
        }
    }

    /// The caps on a host with `host_memory_mb` of memory (0 when it could not be
    /// read: then only a budget set in the config limits the jobs' sum). Three
    /// quarters leaves the rest to the host itself and the sandboxes' own overhead.
    pub fn caps(&self, host_memory_mb: u64) -> AdmissionCaps {
        let budget = self.memory_budget_mb.or_else(|| {
            (host_memory_mb > 0).then(|| (host_memory_mb / 4 * 3).clamp(1, MAX_MEMORY_MB))
        });
        AdmissionCaps {
            max_job_memory_mb: Some(self.max_job_memory_mb),
            memory_budget_mb: budget,
            max_job_timeout_s: Some(self.max_job_timeout_s),
        }
    }
}

/// Whether to start `spec` beside running jobs that asked for `running_mb` each;
/// the error is why not, which [`judge`] turns into what the host does.
pub fn admit(
    caps: &AdmissionCaps,
    spec: &JobSpec,
    running_mb: impl IntoIterator<Item = u32>,
) -> Result<(), Inadmissible> {
    let in_use: u64 = running_mb.into_iter().map(u64::from).sum();
    caps.admits(spec.memory_mb, spec.timeout_s, in_use)
}

/// What the host does with an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within the caps: start it.
    Run,
    /// Past the caps, started all the same (with a warning): the coordinator cannot
    /// take a refusal back, and any other answer would end the job for good though a
    /// bigger worker could run it. The executor's own limits (the job's `memory_mb`
    /// and `timeout_s`) still hold; only this host's caps on them do not.
    RunPastCaps(Inadmissible),
    /// Not started: answered with `refused` to a coordinator that reads it, else
    /// with a sandbox error.
    Refuse(Inadmissible),
}

/// [`admit`], and what to do about its answer. A coordinator whose `welcome` lacks
/// `reads_refused` (an older one) neither knows the caps nor can requeue a job a
/// worker will not run, so to it the caps are not enforced (as before the caps
/// existed), except that a job asking for no memory is never run: it would run
/// without a memory limit, and it cannot run anywhere else either.
pub fn judge(
    caps: &AdmissionCaps,
    spec: &JobSpec,
    running_mb: impl IntoIterator<Item = u32>,
    coordinator_reads_refused: bool,
) -> Verdict {
    match admit(caps, spec, running_mb) {
        Ok(()) => Verdict::Run,
        Err(why) if coordinator_reads_refused || why == Inadmissible::NoMemory => {
            Verdict::Refuse(why)
        }
        Err(why) => Verdict::RunPastCaps(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridx_proto::Language;

    fn spec(memory_mb: u32, timeout_s: u32) -> JobSpec {
        JobSpec {
            gpu_memory_mb: None,
            gpus: 0,
            language: Language::Bash,
            code: "true".into(),
            stdin: String::new(),
            timeout_s,
            memory_mb,
            priority: 0,
            max_output_bytes: 1024,
        }
    }

    #[test]
    fn the_defaults_take_any_default_job_on_a_big_enough_host() {
        let settings = Settings::from_config(&WorkerConfig::default());
        let caps = settings.caps(16 * 1024);
        assert_eq!(caps.max_job_memory_mb, Some(4096));
        assert_eq!(caps.memory_budget_mb, Some(12 * 1024));
        assert_eq!(caps.max_job_timeout_s, Some(300));
        let limits = gridx_proto::limits::JobLimits::default();
        assert_eq!(
            admit(&caps, &spec(limits.max_memory_mb, limits.max_timeout_s), []),
            Ok(())
        );
    }

    #[test]
    fn the_budget_is_three_quarters_of_the_host_unless_set() {
        let mut settings = Settings::from_config(&WorkerConfig::default());
        assert_eq!(settings.caps(1000).memory_budget_mb, Some(750));
        assert_eq!(settings.caps(1).memory_budget_mb, Some(1));
        assert_eq!(
            settings.caps(u64::MAX).memory_budget_mb,
            Some(MAX_MEMORY_MB)
        );
        // Unknown host memory: no budget but the one configured.
        assert_eq!(settings.caps(0).memory_budget_mb, None);
        settings.memory_budget_mb = Some(2048);
        assert_eq!(settings.caps(0).memory_budget_mb, Some(2048));
        assert_eq!(settings.caps(1_000_000).memory_budget_mb, Some(2048));
    }

    #[test]
    fn an_assignment_past_any_cap_is_refused_with_the_numbers() {
        let caps = Settings {
            max_job_memory_mb: 1024,
            memory_budget_mb: Some(2048),
            max_job_timeout_s: 60,
        }
        .caps(64 * 1024);
        assert_eq!(admit(&caps, &spec(1024, 60), [512, 512]), Ok(()));
        let over_budget = admit(&caps, &spec(1024, 60), [512, 513]).unwrap_err();
        assert!(
            over_budget.to_string().contains("1025 MB of its 2048 MB"),
            "{over_budget}"
        );
        let too_big = admit(&caps, &spec(1025, 60), []).unwrap_err();
        assert!(too_big.to_string().contains("1024 MB per job"), "{too_big}");
        let too_long = admit(&caps, &spec(64, 61), []).unwrap_err();
        assert!(too_long.to_string().contains("61 s"), "{too_long}");
        assert_eq!(admit(&caps, &spec(0, 1), []), Err(Inadmissible::NoMemory));
    }

    /// To a coordinator that reads `refused` every cap is held to; to an older one
    /// only the rule against a job without memory, since it cannot requeue the job.
    #[test]
    fn an_older_coordinator_gets_its_jobs_run_past_the_caps_but_never_without_memory() {
        let caps = Settings {
            max_job_memory_mb: 512,
            memory_budget_mb: Some(1024),
            max_job_timeout_s: 60,
        }
        .caps(64 * 1024);
        assert_eq!(judge(&caps, &spec(512, 60), [], true), Verdict::Run);
        assert_eq!(judge(&caps, &spec(512, 60), [], false), Verdict::Run);
        for past in [spec(513, 60), spec(512, 61), spec(512, 60)] {
            let why = admit(&caps, &past, [600]).unwrap_err();
            assert_eq!(
                judge(&caps, &past, [600], true),
                Verdict::Refuse(why.clone())
            );
            assert_eq!(judge(&caps, &past, [600], false), Verdict::RunPastCaps(why));
        }
        for reads_refused in [true, false] {
            assert_eq!(
                judge(&caps, &spec(0, 1), [], reads_refused),
                Verdict::Refuse(Inadmissible::NoMemory)
            );
        }
    }
}
