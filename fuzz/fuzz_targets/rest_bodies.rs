//! Fuzzes the REST request bodies and queries the coordinator accepts, through the
//! same functions the server uses:
//!
//! * `POST /v1/jobs`: `ApiJson<SubmitJobRequest>` is axum's `Json::from_bytes`
//!   (serde_json from the bytes, `deny_unknown_fields`, no trailing data), then
//!   `JobLimits::validate`, as in `gridx-server/src/api/jobs.rs::submit`;
//! * `GET /v1/jobs?..` and `GET /v1/ledger?..`: `ApiQuery<JobListQuery>` and
//!   `ApiQuery<LedgerQuery>` are axum's `Query::try_from_uri`.
//!
//! The same input is tried as a body and as a query string. Properties:
//! * nothing panics (parsing, validation);
//! * `validate` accepts a request exactly when it is inside the limits, and an
//!   accepted spec keeps every bound (timeout, memory, priority, code and stdin size,
//!   no empty code, no NUL) and carries the request's values or the defaults;
//! * a size error is reported as "too large" (413) only when a size is exceeded;
//! * what a client serialises from an accepted request (serde_json for bodies,
//!   serde_urlencoded for queries, as reqwest does) is read back equal by the server;
//! * an accepted spec sent to a worker in `assign` decodes back equal.
//!
//! Validation runs against the default limits and against tight ones, so that short
//! fuzz inputs reach the size checks too.

#![no_main]

use axum::Json;
use axum::extract::Query;
use axum::http::Uri;
use gridx_proto::JobId;
use gridx_proto::api::{JobListQuery, LedgerQuery, SubmitJobRequest};
use gridx_proto::limits::{JobLimits, JobSpec};
use gridx_proto::protocol::{
    AssignedJob, CoordinatorMessage, DEFAULT_MAX_FRAME_BYTES, decode_coordinator_message, encode,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fuzz_target!(|data: &[u8]| {
    submit_body(data);
    if let Ok(query) = std::str::from_utf8(data) {
        query_string::<JobListQuery>("/v1/jobs", query);
        query_string::<LedgerQuery>("/v1/ledger", query);
    }
});

fn tight_limits() -> JobLimits {
    JobLimits {
        default_timeout_s: 5,
        min_timeout_s: 2,
        max_timeout_s: 9,
        default_memory_mb: 64,
        min_memory_mb: 48,
        max_memory_mb: 128,
        max_code_bytes: 16,
        max_stdin_bytes: 8,
        max_output_bytes: 1000,
        max_priority: 3,
        max_gpus: 2,
    }
}

fn submit_body(data: &[u8]) {
    let Ok(Json(request)) = Json::<SubmitJobRequest>::from_bytes(data) else {
        return;
    };

    // A client (gridx-tui, via reqwest's `.json(..)`) writes the request with
    // serde_json; the server must read back what the client meant.
    let body = match serde_json::to_vec(&request) {
        Ok(body) => body,
        Err(e) => panic!("cannot serialise an accepted request: {e}\n{request:?}"),
    };
    match Json::<SubmitJobRequest>::from_bytes(&body) {
        Ok(Json(back)) => assert_eq!(back, request, "submit body round trip changed it"),
        Err(e) => panic!(
            "re-serialised request is refused: {e}\nbody: {:?}",
            String::from_utf8_lossy(&body)
        ),
    }

    for limits in [JobLimits::default(), tight_limits()] {
        assert_eq!(
            limits.check(),
            Ok(()),
            "the fuzz target's limits are inconsistent"
        );
        check_validation(&limits, &request);
    }
}

/// What `validate` must decide, written independently of it from the documented rules.
fn expected_acceptance(limits: &JobLimits, r: &SubmitJobRequest) -> (bool, bool) {
    let stdin_len = r.stdin.as_ref().map_or(0, String::len);
    let too_large = r.code.len() > limits.max_code_bytes || stdin_len > limits.max_stdin_bytes;
    let timeout = r.timeout_s.unwrap_or(limits.default_timeout_s);
    let memory = r.memory_mb.unwrap_or(limits.default_memory_mb);
    let priority = i64::from(r.priority.unwrap_or(0));
    let max_priority = i64::from(limits.max_priority);
    let ok = !too_large
        && !r.code.trim().is_empty()
        && !r.code.contains('\0')
        && (limits.min_timeout_s..=limits.max_timeout_s).contains(&timeout)
        && (limits.min_memory_mb..=limits.max_memory_mb).contains(&memory)
        && (-max_priority..=max_priority).contains(&priority)
        && r.gpus.unwrap_or(0) <= limits.max_gpus
        // The least memory of each GPU is a positive number, and only with GPUs.
        && match r.gpu_memory_mb {
            None => true,
            Some(mb) => mb > 0 && r.gpus.unwrap_or(0) > 0,
        };
    (ok, too_large)
}

fn check_validation(limits: &JobLimits, request: &SubmitJobRequest) {
    let (expect_ok, too_large) = expected_acceptance(limits, request);
    match limits.validate(request) {
        Ok(spec) => {
            assert!(
                expect_ok,
                "accepted out of limits: {request:?}\nlimits: {limits:?}"
            );
            check_spec(limits, request, &spec);
            assign_round_trip(spec);
        }
        Err(e) => {
            assert!(!expect_ok, "refused within limits ({e}): {request:?}");
            assert_eq!(
                e.is_too_large(),
                too_large,
                "wrong status class for {e}: {request:?}"
            );
            // The message goes back to the client: it must not echo the input.
            assert!(e.to_string().len() < 200, "long error message: {e}");
        }
    }
}

fn check_spec(limits: &JobLimits, request: &SubmitJobRequest, spec: &JobSpec) {
    assert!((limits.min_timeout_s..=limits.max_timeout_s).contains(&spec.timeout_s));
    assert!((limits.min_memory_mb..=limits.max_memory_mb).contains(&spec.memory_mb));
    assert!(spec.priority.unsigned_abs() <= limits.max_priority.unsigned_abs());
    assert!(spec.code.len() <= limits.max_code_bytes);
    assert!(spec.stdin.len() <= limits.max_stdin_bytes);
    assert!(!spec.code.trim().is_empty() && !spec.code.contains('\0'));
    assert_eq!(spec.max_output_bytes, limits.max_output_bytes);
    assert_eq!(spec.gpus, request.gpus.unwrap_or(0));
    assert_eq!(spec.gpu_memory_mb, request.gpu_memory_mb);
    assert_eq!(spec.language, request.language);
    assert_eq!(spec.code, request.code);
    assert_eq!(
        &spec.stdin,
        request.stdin.as_ref().unwrap_or(&String::new())
    );
    assert_eq!(
        spec.timeout_s,
        request.timeout_s.unwrap_or(limits.default_timeout_s)
    );
    assert_eq!(
        spec.memory_mb,
        request.memory_mb.unwrap_or(limits.default_memory_mb)
    );
    assert_eq!(spec.priority, request.priority.unwrap_or(0));
}

/// The spec travels to a worker inside `assign`; the worker must read the same spec.
fn assign_round_trip(spec: JobSpec) {
    let message = CoordinatorMessage::Assign {
        job: AssignedJob {
            // The largest id the protocol allows (ids are SQLite integers).
            job_id: JobId(gridx_proto::protocol::MAX_ID),
            // As many GPUs as the spec asks for, with the largest indices.
            gpus: (0..spec.gpus).map(|i| 255 - i).collect(),
            spec,
        },
        attempt: u32::MAX,
    };
    let frame = match encode(&message) {
        Ok(frame) => frame,
        Err(e) => panic!("cannot encode assign: {e}"),
    };
    match decode_coordinator_message(&frame, DEFAULT_MAX_FRAME_BYTES) {
        Ok(back) => assert_eq!(back, message, "assign round trip changed the spec"),
        Err(e) => panic!("worker cannot decode assign: {e}\nframe: {frame:?}"),
    }
}

fn query_string<T>(path: &str, query: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    // hyper refuses a request line whose target is not a valid URI before any
    // extractor runs, so such inputs never reach `Query`.
    let Ok(uri) = format!("{path}?{query}").parse::<Uri>() else {
        return;
    };
    let Ok(Query(value)) = Query::<T>::try_from_uri(&uri) else {
        return;
    };
    // The client builds the query with serde_urlencoded (reqwest's `.query(..)`).
    let encoded = match serde_urlencoded::to_string(&value) {
        Ok(s) => s,
        Err(e) => panic!("cannot serialise an accepted query: {e}\n{value:?}"),
    };
    let uri2 = match format!("{path}?{encoded}").parse::<Uri>() {
        Ok(u) => u,
        Err(e) => panic!("client-built query is not a URI: {e}\n{encoded:?}"),
    };
    match Query::<T>::try_from_uri(&uri2) {
        Ok(Query(back)) => assert_eq!(back, value, "query round trip changed it: {encoded:?}"),
        Err(e) => panic!("client-built query is refused: {e}\nquery: {encoded:?}\nfrom: {query:?}"),
    }
}
