//! What result checks found (docs/trust.md), in words: a worker's trust and how a
//! job's result was checked. One wording for the dashboard and the one-shot commands.
//! Text the coordinator relays (a quarantine reason, why a job waits) leaves here
//! inert (`crate::inert`), so no caller can forget it.

use crate::inert::inert;
use gridx_proto::JobStatus;
use gridx_proto::api::{JobValidation, Reliability, ReplicaView, ValidationOutcome, Verdict};

/// How far the grid trusts a worker, for colouring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustLevel {
    /// Marked trusted by the operator: its results need no check.
    Trusted,
    /// Its results are spot-checked by other owners' workers.
    Checked,
    /// Gets no jobs until an operator restores it.
    Quarantined,
}

pub fn trust_level(r: &Reliability) -> TrustLevel {
    // Quarantine first: a trusted worker is never quarantined by the coordinator,
    // but if the record says so, that is what matters to whoever reads it.
    if r.quarantined.is_some() {
        TrustLevel::Quarantined
    } else if r.trusted {
        TrustLevel::Trusted
    } else {
        TrustLevel::Checked
    }
}

/// A per-mille rate as a percentage: `100%`, `5%`, `7.5%`.
pub fn percent(permille: u16) -> String {
    match permille % 10 {
        0 => format!("{}%", permille / 10),
        tenth => format!("{}.{tenth}%", permille / 10),
    }
}

/// A worker's trust in a table cell: `trusted`, `QUARANTINED`, or the share of its
/// results that are checked (`check 5%`).
pub fn trust_cell(r: &Reliability) -> String {
    match trust_level(r) {
        TrustLevel::Trusted => "trusted".into(),
        TrustLevel::Quarantined => "QUARANTINED".into(),
        TrustLevel::Checked => format!("check {}", percent(r.spot_check_permille)),
    }
}

/// A worker's trust in one sentence, for its card: what the grid does with its
/// results, and for a quarantined one why and how it comes back.
pub fn trust_sentence(r: &Reliability, worker_id: impl std::fmt::Display) -> String {
    match (&r.quarantined, r.trusted) {
        (Some(why), _) => format!(
            "QUARANTINED: {}; it gets no jobs until an operator runs `gridx-server worker restore {worker_id}`",
            inert(why)
        ),
        (None, true) => "trusted by the operator: its results are not checked".into(),
        (None, false) => format!(
            "{} of its results are run again by another owner's worker and compared",
            percent(r.spot_check_permille)
        ),
    }
}

/// A worker's record: what the checks found of its results so far.
pub fn record_sentence(r: &Reliability) -> String {
    let mut text = format!(
        "{} confirmed, {} invalid, {} errors, {} lost · streak {}",
        r.validated, r.invalid, r.errors, r.lost, r.streak
    );
    if r.pending > 0 {
        text.push_str(&format!(" · {} pending a check", r.pending));
    }
    text
}

/// How the result of a job in `status` was (or will be) checked, without its
/// replicas: `checked: quorum of 2 agreed`, `not checked: validate=false`, …
pub fn check_headline(v: &JobValidation, status: JobStatus) -> String {
    let valid = v
        .replicas
        .iter()
        .filter(|r| r.verdict == Verdict::Valid)
        .count();
    match v.outcome {
        Some(ValidationOutcome::Quorum) => format!("checked: quorum of {valid} agreed"),
        Some(ValidationOutcome::NoQuorum) => {
            "checked: no quorum, the results disagreed (refunded)".into()
        }
        Some(ValidationOutcome::TrustedWorker) => {
            "not checked: run by a worker the operator trusts".into()
        }
        Some(ValidationOutcome::OwnWorker) => {
            "not checked: run by a worker of the job's own user".into()
        }
        Some(ValidationOutcome::NotSpotChecked) => {
            "not checked: its worker's record let it pass this time (spot checks)".into()
        }
        Some(ValidationOutcome::ProvenWorker) => {
            "not checked: validate=false, run by a worker with a long clean record".into()
        }
        // Live too: a queued one's `waiting` says where it may run.
        Some(ValidationOutcome::Unvalidated) | None if !v.required => {
            "not checked: validate=false".into()
        }
        Some(ValidationOutcome::Unvalidated) => "not checked: checks are off on this grid".into(),
        Some(ValidationOutcome::NoResult) => "not checked: the job ended without a result".into(),
        // Only a job that ended before the coordinator recorded checks (migration 5).
        None if status.is_terminal() => "not checked: it ended before result checks".into(),
        None if v.replicas.is_empty() => "pending: decided when a worker reports".into(),
        None => format!(
            "checking: {} result{} in, waiting for agreement",
            v.replicas.len(),
            if v.replicas.len() == 1 { "" } else { "s" }
        ),
    }
}

/// What the check decided of one replica, as a word.
pub fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Valid => "valid",
        Verdict::Invalid => "INVALID",
        Verdict::Pending => "pending",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// One replica in brief: `bob #3 valid` (owner, worker id, verdict).
pub fn replica_brief(r: &ReplicaView) -> String {
    format!("{} #{} {}", r.owner, r.worker_id, verdict_word(r.verdict))
}

/// What one replica reported, as compared: its state, exit code and the start of its
/// stdout digest (`succeeded exit 0 · out 5891b5b5`).
pub fn replica_result(r: &ReplicaView) -> String {
    let mut text = match r.reason {
        Some(reason) => format!("{} ({reason})", r.status),
        None => r.status.to_string(),
    };
    if let Some(code) = r.exit_code {
        text.push_str(&format!(" exit {code}"));
    }
    // Eight hex digits tell which replicas printed the same; the full digest is in
    // `--json`.
    let digest = r.stdout_sha256.get(..8).unwrap_or(&r.stdout_sha256);
    text.push_str(&format!(" · out {}", inert(digest)));
    if r.stdout_truncated || r.stderr_truncated {
        text.push_str(" (truncated)");
    }
    text
}

/// How a job's result was checked in one line, its replicas in brief:
/// `checked: quorum of 2 agreed (bob #3 valid, carol #7 valid, mallory #9 INVALID)`.
pub fn check_line(v: &JobValidation, status: JobStatus) -> String {
    let headline = check_headline(v, status);
    if v.replicas.is_empty() {
        return headline;
    }
    let briefs: Vec<String> = v.replicas.iter().map(replica_brief).collect();
    format!("{headline} ({})", briefs.join(", "))
}

/// Why a queued job waits for a check, as the coordinator put it, inert.
pub fn waiting_line(v: &JobValidation) -> Option<String> {
    v.waiting
        .as_deref()
        .map(|w| format!("queued: {}", inert(w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{
        quarantined, replica, trusted, validated_by_quorum, waiting_for_quorum,
    };
    use gridx_proto::JobStatus;

    #[test]
    fn percentages_keep_a_tenth_when_there_is_one() {
        assert_eq!(percent(1000), "100%");
        assert_eq!(percent(50), "5%");
        assert_eq!(percent(75), "7.5%");
        assert_eq!(percent(0), "0%");
    }

    #[test]
    fn a_cell_says_trusted_quarantined_or_how_often_it_is_checked() {
        assert_eq!(trust_cell(&trusted()), "trusted");
        assert_eq!(trust_cell(&quarantined()), "QUARANTINED");
        let probation = Reliability {
            spot_check_permille: 1000,
            ..Default::default()
        };
        assert_eq!(trust_cell(&probation), "check 100%");
        assert_eq!(trust_level(&probation), TrustLevel::Checked);
    }

    #[test]
    fn a_quarantine_says_why_and_how_to_lift_it_inertly() {
        let mut r = quarantined();
        r.quarantined = Some("2 invalid results \u{1b}]0;x\u{7}".into());
        let text = trust_sentence(&r, 9);
        assert!(
            text.starts_with("QUARANTINED: 2 invalid results ^[]0;x^G;"),
            "{text}"
        );
        assert!(text.ends_with("`gridx-server worker restore 9`"), "{text}");
        assert_eq!(
            trust_sentence(&trusted(), 1),
            "trusted by the operator: its results are not checked"
        );
    }

    #[test]
    fn a_record_names_pending_checks_only_when_there_are_some() {
        let mut r = Reliability {
            validated: 12,
            invalid: 1,
            streak: 4,
            ..Default::default()
        };
        assert_eq!(
            record_sentence(&r),
            "12 confirmed, 1 invalid, 0 errors, 0 lost · streak 4"
        );
        r.pending = 2;
        assert!(record_sentence(&r).ends_with(" · 2 pending a check"));
    }

    #[test]
    fn a_quorum_line_names_each_replica_and_its_verdict() {
        assert_eq!(
            check_line(&validated_by_quorum(), JobStatus::Succeeded),
            "checked: quorum of 2 agreed (bob #1 valid, carol #2 valid, mallory #9 INVALID)"
        );
        let r = replica(3, 9, "mallory", Verdict::Invalid);
        assert_eq!(replica_result(&r), "succeeded exit 0 · out 0badc0de");
    }

    #[test]
    fn unchecked_jobs_say_why() {
        let mut v = JobValidation {
            required: false,
            outcome: Some(ValidationOutcome::Unvalidated),
            replicas: vec![],
            waiting: None,
        };
        assert_eq!(
            check_line(&v, JobStatus::Succeeded),
            "not checked: validate=false"
        );
        v.required = true;
        assert_eq!(
            check_line(&v, JobStatus::Succeeded),
            "not checked: checks are off on this grid"
        );
        v.outcome = None;
        assert_eq!(
            check_line(&v, JobStatus::Failed),
            "not checked: it ended before result checks"
        );
        assert_eq!(
            check_line(&v, JobStatus::Queued),
            "pending: decided when a worker reports"
        );
        v.replicas = vec![replica(1, 1, "bob", Verdict::Pending)];
        assert_eq!(
            check_line(&v, JobStatus::Queued),
            "checking: 1 result in, waiting for agreement (bob #1 pending)"
        );
    }

    #[test]
    fn a_waiting_reason_is_inert() {
        let mut v = waiting_for_quorum();
        assert!(waiting_line(&v).is_some_and(|w| w.starts_with("queued: waiting for a quorum")));
        v.waiting = Some("\u{202e}evil".into());
        assert_eq!(waiting_line(&v).as_deref(), Some("queued: <U+202E>evil"));
        v.waiting = None;
        assert_eq!(waiting_line(&v), None);
    }
}
