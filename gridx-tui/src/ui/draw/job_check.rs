//! The job details' lines on how its result is checked (docs/trust.md): the outcome,
//! why a queued job waits, and each replica with the verdict on it.

use super::overlays::styled_field;
use crate::commands::result_checks::{check_headline, replica_result, verdict_word};
use crate::inert::inert;
use crate::ui::state::{AppState, CheckState};
use gridx_proto::api::{ValidationOutcome, Verdict};
use gridx_proto::{JobId, JobStatus};
use ratatui::text::{Line, Span};

/// The details' lines on how the result is checked: the outcome, why it waits, and
/// each replica with what it reported and the verdict on it (client mode).
pub(super) fn check_lines(state: &AppState, id: JobId) -> Vec<Line<'static>> {
    let t = &state.theme;
    let validation = match state.checks.get(&id).map(|c| &c.state) {
        Some(CheckState::Loaded(v)) => v,
        Some(CheckState::Failed(why)) => {
            return vec![styled_field(
                state,
                "check",
                inert(why).into_owned(),
                t.error(),
            )];
        }
        Some(CheckState::Loading) | None => {
            return vec![styled_field(state, "result", "loading…".into(), t.dim())];
        }
    };
    let headline_style = match validation.outcome {
        Some(ValidationOutcome::Quorum) => t.ok(),
        Some(ValidationOutcome::NoQuorum) => t.error(),
        _ => t.text(),
    };
    let mut lines = vec![styled_field(
        state,
        "result",
        check_headline(
            validation,
            state.jobs.get(&id).map_or(JobStatus::Queued, |j| j.status),
        ),
        headline_style,
    )];
    if let Some(waiting) = &validation.waiting {
        lines.push(styled_field(
            state,
            "queued",
            inert(waiting).into_owned(),
            t.warn(),
        ));
    }
    for r in &validation.replicas {
        let verdict_style = match r.verdict {
            Verdict::Valid => t.ok(),
            Verdict::Invalid => t.error(),
            Verdict::Pending | Verdict::Inconclusive => t.dim(),
        };
        // The verdict first: a long worker name wraps what it reported, not it.
        lines.push(Line::from(vec![
            Span::styled(format!("{:>10} ", format!("run {}", r.attempt)), t.dim()),
            Span::styled(verdict_word(r.verdict), verdict_style),
            Span::styled(
                format!(
                    " {} ({}) · {}",
                    state.worker_label(r.worker_id),
                    r.owner,
                    replica_result(r)
                ),
                t.text(),
            ),
        ]));
    }
    lines
}
