//! The OpenAPI document: what the `utoipa` annotations generate, plus every bound the
//! handlers enforce, taken from the same constants and from this coordinator's
//! `[server.limits]`, so that a request the document allows is never refused with 400.

use gridx_proto::JobLimits;
use gridx_proto::admin::{AuditQuery, MAX_REASON_BYTES};
use gridx_proto::api::{JobListQuery, LedgerQuery, MAX_IDEMPOTENCY_KEY_LEN};
use gridx_proto::ids::MAX_NAME_LEN;
use utoipa::Number;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Grid-X coordinator API",
        description = "Submit code jobs, follow them, and see credits and workers. Authenticate with `Authorization: Bearer <token>` (from `gridx-server user add`). Errors are `{\"error\": {\"code\", \"message\"}}`. The job bounds in this document are the ones this coordinator enforces (its `[server.limits]`)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Submit, list, inspect and cancel jobs"),
        (name = "account", description = "Balance and ledger"),
        (name = "workers", description = "The grid's workers"),
        (name = "system", description = "Health, metrics and live events"),
        (name = "admin", description = "The operator's actions on users (admin tokens only)"),
    )
)]
pub(super) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The characters Rust's `str::trim` removes (`char::is_whitespace`, Unicode
/// `White_Space`), as ECMA-262 class ranges. `JobLimits::validate` refuses code made
/// only of these; ECMA-262's own `\s` differs (it has U+FEFF, lacks U+0085), so the
/// set is spelled out. A unit test checks it against `char::is_whitespace`.
const BLANK_RANGES: [(char, char); 10] = [
    ('\u{0009}', '\u{000D}'),
    ('\u{0020}', '\u{0020}'),
    ('\u{0085}', '\u{0085}'),
    ('\u{00A0}', '\u{00A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
];

/// The ECMA-262 pattern of a valid `code`: no NUL anywhere, and at least one
/// character that is not blank.
pub fn code_pattern() -> String {
    let mut blank = String::new();
    for (from, to) in BLANK_RANGES {
        blank.push_str(&format!("\\u{:04X}", u32::from(from)));
        if to != from {
            blank.push_str(&format!("-\\u{:04X}", u32::from(to)));
        }
    }
    format!("^[^\\u0000]*[^\\u0000{blank}][^\\u0000]*$")
}

/// The document of these routes, with the bounds of this coordinator written in.
pub fn with_bounds(mut doc: Document, limits: &JobLimits) -> Document {
    submit_bounds(&mut doc, limits);
    let ops = &mut doc.paths.paths;
    if let Some(list) = ops.get_mut("/v1/jobs").and_then(|p| p.get.as_mut()) {
        let max = JobListQuery::MAX_LIMIT;
        bound_param(list, "limit", |p, o| {
            int_range(o, 1, i64::from(max));
            p.description = Some(format!(
                "Page size, 1 to {max} (default {})",
                JobListQuery::DEFAULT_LIMIT
            ));
        });
        bound_param(list, "before", |p, o| {
            o.minimum = Some(Number::UInt(1));
            o.maximum = Some(Number::UInt(
                usize::try_from(u64::MAX).unwrap_or(usize::MAX),
            ));
            p.description =
                Some("Only jobs with a smaller id: the `next` of the previous page".to_owned());
        });
    }
    if let Some(submit) = ops.get_mut("/v1/jobs").and_then(|p| p.post.as_mut()) {
        bound_param(submit, "Idempotency-Key", |p, o| {
            o.min_length = Some(1);
            o.max_length = Some(MAX_IDEMPOTENCY_KEY_LEN);
            // Visible ASCII: `!` (0x21) to `~` (0x7E).
            o.pattern = Some("^[!-~]+$".to_owned());
            p.description = Some(format!(
                "1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters, unique per job \
                 you mean to submit once"
            ));
        });
    }
    if let Some(ledger) = ops.get_mut("/v1/ledger").and_then(|p| p.get.as_mut()) {
        let max = LedgerQuery::MAX_LIMIT;
        bound_param(ledger, "limit", |p, o| {
            int_range(o, 1, i64::from(max));
            p.description = Some(format!(
                "Entries, 1 to {max} (default {})",
                LedgerQuery::DEFAULT_LIMIT
            ));
        });
    }
    if let Some(audit) = ops.get_mut("/v1/admin/audit").and_then(|p| p.get.as_mut()) {
        let max = AuditQuery::MAX_LIMIT;
        bound_param(audit, "limit", |p, o| {
            int_range(o, 1, i64::from(max));
            p.description = Some(format!(
                "Entries, 1 to {max} (default {})",
                AuditQuery::DEFAULT_LIMIT
            ));
        });
    }
    for path in [
        "/v1/admin/users/{name}/credit",
        "/v1/admin/users/{name}/disable",
        "/v1/admin/users/{name}/enable",
        "/v1/admin/users/{name}/token",
    ] {
        if let Some(op) = ops.get_mut(path).and_then(|p| p.post.as_mut()) {
            bound_param(op, "name", |_, o| {
                o.min_length = Some(1);
                o.max_length = Some(MAX_NAME_LEN);
                o.pattern = Some(format!("^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$"));
            });
        }
    }
    for path in [
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/stdout",
        "/v1/jobs/{id}/stderr",
        "/v1/jobs/{id}/cancel",
    ] {
        let Some(item) = ops.get_mut(path) else {
            continue;
        };
        for op in [item.get.as_mut(), item.post.as_mut()]
            .into_iter()
            .flatten()
        {
            // Any other text is 404, like a job that does not exist.
            bound_param(op, "id", |_, o| o.minimum = Some(Number::UInt(1)));
        }
    }
    for body in ["CreditRequest", "DisableRequest"] {
        if let Some(reason) =
            component(&mut doc, body).and_then(|c| as_object(c.properties.get_mut("reason")))
        {
            reason.min_length = Some(1);
            reason.max_length = Some(MAX_REASON_BYTES);
        }
    }
    if let Some(name) = component(&mut doc, "UserName") {
        name.min_length = Some(1);
        name.max_length = Some(MAX_NAME_LEN);
        name.pattern = Some(format!("^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$"));
    }
    doc
}

/// `SubmitJobRequest`: sizes, the code's shape and the numeric ranges of `limits`.
fn submit_bounds(doc: &mut Document, limits: &JobLimits) {
    let Some(request) = component(doc, "SubmitJobRequest") else {
        return;
    };
    let note = "The operator sets this bound in `[server.limits]`; this is this coordinator's.";
    let props = &mut request.properties;
    if let Some(code) = as_object(props.get_mut("code")) {
        code.min_length = Some(1);
        code.max_length = Some(limits.max_code_bytes);
        code.pattern = Some(code_pattern());
        code.description = Some(format!(
            "The source: not blank, no NUL byte, at most {} bytes of UTF-8. `maxLength` \
             counts characters, so text outside ASCII can pass it and still be refused \
             with 413. {note}",
            limits.max_code_bytes
        ));
    }
    if let Some(stdin) = as_object(props.get_mut("stdin")) {
        stdin.max_length = Some(limits.max_stdin_bytes);
        stdin.description = Some(format!(
            "The job's standard input (default empty), at most {} bytes of UTF-8 (413 past \
             it; `maxLength` counts characters). {note}",
            limits.max_stdin_bytes
        ));
    }
    if let Some(timeout) = as_object(props.get_mut("timeout_s")) {
        let (min, max) = (limits.min_timeout_s, limits.max_timeout_s);
        int_range(timeout, i64::from(min), i64::from(max));
        timeout.description = Some(format!(
            "Wall-clock limit in seconds (default {}). {note}",
            limits.default_timeout_s
        ));
    }
    if let Some(memory) = as_object(props.get_mut("memory_mb")) {
        let (min, max) = (limits.min_memory_mb, limits.max_memory_mb);
        int_range(memory, i64::from(min), i64::from(max));
        memory.description = Some(format!(
            "Memory limit in MiB (default {}). {note}",
            limits.default_memory_mb
        ));
    }
    if let Some(gpus) = as_object(props.get_mut("gpus")) {
        let max = limits.max_gpus.min(gridx_proto::gpu::MAX_LENT_GPUS as u32);
        int_range(gpus, 0, i64::from(max));
        gpus.description = Some(format!(
            "GPUs the job needs (default 0: none, and it sees none); each adds the \
             coordinator's `gpu_cost` to its cost. {note}"
        ));
    }
    if let Some(memory) = as_object(props.get_mut("gpu_memory_mb")) {
        int_range(memory, 1, i64::from(u32::MAX));
        memory.description =
            Some("The least memory, in MB, each of its GPUs must have; only with `gpus`.".into());
    }
    if let Some(priority) = as_object(props.get_mut("priority")) {
        let max = i64::from(limits.max_priority);
        int_range(priority, -max, max);
        priority.description = Some(format!(
            "Higher runs first (default 0). {note} Each user also has a maximum set by \
             the operator (0 unless raised): above it the submit is refused with 403 \
             `forbidden`."
        ));
    }
}

fn component<'a>(doc: &'a mut Document, name: &str) -> Option<&'a mut Object> {
    as_object(doc.components.as_mut()?.schemas.get_mut(name))
}

fn as_object(schema: Option<&mut RefOr<Schema>>) -> Option<&mut Object> {
    match schema {
        Some(RefOr::T(Schema::Object(object))) => Some(object),
        _ => None,
    }
}

fn bound_param(op: &mut Operation, name: &str, bound: impl FnOnce(&mut Parameter, &mut Object)) {
    let param = op.parameters.iter_mut().flatten().find_map(|p| match p {
        RefOr::T(p) if p.name == name => Some(p),
        _ => None,
    });
    if let Some(param) = param {
        // Detach the schema while the closure also edits the parameter's description.
        let mut schema = param.schema.take();
        if let Some(object) = as_object(schema.as_mut()) {
            bound(param, object);
        }
        param.schema = schema;
    }
}

fn int_range(object: &mut Object, min: i64, max: i64) {
    // Every bound here is far inside isize on the targets the coordinator runs on.
    let as_number = |n: i64| Number::Int(isize::try_from(n).unwrap_or(isize::MAX));
    object.minimum = Some(as_number(min));
    object.maximum = Some(as_number(max));
}

#[cfg(test)]
mod tests {
    use super::{BLANK_RANGES, code_pattern};

    #[test]
    fn blank_ranges_are_exactly_what_trim_removes() {
        let listed = |c: char| BLANK_RANGES.iter().any(|&(a, b)| (a..=b).contains(&c));
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            assert_eq!(listed(c), c.is_whitespace(), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn code_pattern_is_anchored_and_excludes_nul() {
        let pattern = code_pattern();
        assert!(pattern.starts_with("^[^\\u0000]*[^\\u0000\\u0009-\\u000D\\u0020\\u0085"));
        assert!(pattern.ends_with("\\u3000][^\\u0000]*$"), "{pattern}");
    }
}
