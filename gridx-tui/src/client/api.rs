//! A typed client of the coordinator's HTTP API, of whichever coordinator leads when
//! the `server` setting lists several (`client::coordinators`).

use crate::backoff::{Backoff, Retry, retry};
use crate::client::coordinators::{Coordinators, Tried, standby_refusal};
use crate::client::tls::{Endpoint, EndpointError};
use gridx_proto::JobId;
use gridx_proto::api::{
    BalanceResponse, ErrorBody, JobListQuery, JobListResponse, JobView, LedgerQuery,
    LedgerResponse, OutputStream, SubmitBatchRequest, SubmitBatchResponse, SubmitJobRequest,
    WorkersResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The coordinator answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the coordinator at {url}: {message}")]
    Network { url: String, message: String },
    /// The TLS handshake failed (a refused certificate): not worth a resend.
    #[error("cannot reach the coordinator at {url}: {message}")]
    Tls { url: String, message: String },
    #[error("unexpected answer from the coordinator: {0}")]
    Decode(String),
    /// An answer that is not the API's JSON (an HTML page, an empty body): most often
    /// the address of something else, so the error asks rather than pastes the page.
    #[error("{what} from {url}{detail}; is this a Grid-X coordinator?")]
    Foreign {
        status: u16,
        /// `HTTP 404 Not Found`, or for a success `an answer that is not JSON`.
        what: String,
        url: String,
        /// ` with no body`, or ` (1234 bytes, starting "<!DOCTYPE html>…")`.
        detail: String,
    },
    #[error(
        "no API token: pass --token or set GRIDX_TOKEN (an operator creates one with `gridx-server user add`)"
    )]
    NoToken,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Of several coordinators, none answered as the leader: each was unreachable or
    /// a standby (`client::coordinators`). Nothing was applied.
    #[error("{0}")]
    NoLeader(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Foreign { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Why one coordinator of several did not answer, for [`ClientError::NoLeader`]
    /// (which names its address).
    fn reason(&self) -> String {
        match self {
            ClientError::Network { message, .. } | ClientError::Tls { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        }
    }
}

/// Whether a request may go to the next coordinator once it may have reached one.
/// Before it was sent (the connection failed) or when a standby refused it, any
/// request may: nothing was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resendable {
    /// It changes nothing, or carries an `Idempotency-Key`: after any failure.
    Always,
    /// It might be applied twice (a cancel, a batch): only when it cannot have been.
    Unsent,
}

/// What a request adds to its method, address and token: a query, a body, headers.
type Shape<'a> = &'a (dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync);

#[derive(Clone)]
pub struct ApiClient {
    /// One HTTP client per coordinator (each with its TLS), in the same order.
    http: std::sync::Arc<[reqwest::Client]>,
    coordinators: Coordinators,
    token: Option<String>,
    /// First pause before a submit is sent again; about doubles each time.
    resend_delay: Duration,
}

/// An error answer: the API's error body, or one that is not the API's.
fn error_answer(status: reqwest::StatusCode, url: String, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code.as_str().to_owned(),
            message: body.error.message,
        },
        Err(_) => ClientError::Foreign {
            status: status.as_u16(),
            what: format!("HTTP {status}"),
            url,
            detail: body_detail(bytes),
        },
    }
}

/// A body that is not the API's, described without pasting it: its size and the
/// start of its first line, quoted (escapes stay escapes).
fn body_detail(bytes: &[u8]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return " with no body".into();
    }
    let text = String::from_utf8_lossy(bytes);
    let first = text.trim_start().lines().next().unwrap_or_default();
    let mut start: String = first.chars().take(40).collect();
    if start.len() < text.trim().len() {
        start.push('…');
    }
    format!(" ({} bytes, starting {start:?})", bytes.len())
}

/// 128 random bits as hex: unique per submit without coordination.
fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back to time and process, still unique enough
        // for one client's own resends.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (now ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    hex::encode(bytes)
}

impl ApiClient {
    /// A client of the coordinator at `coordinators` (an [`Endpoint`] for one), their
    /// TLS included.
    pub fn new(
        coordinators: impl Into<Coordinators>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let coordinators = coordinators.into();
        let http = coordinators
            .endpoints()
            .iter()
            .map(|endpoint| {
                endpoint
                    .http_client()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(60))
                    .build()
                    .map_err(|e| ClientError::Setup(endpoint.explain(&e)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            http,
            coordinators,
            token,
            resend_delay: Duration::from_millis(500),
        })
    }

    /// The coordinator in use: the last to answer as the leader.
    pub fn base_url(&self) -> &str {
        self.coordinators.in_use().base_url()
    }

    /// Where the coordinators are and how to reach them (for the live stream, which
    /// shares what this client learns of the leader).
    pub fn coordinators(&self) -> &Coordinators {
        &self.coordinators
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to the coordinator at `index`, with the token, shaped by `shape`.
    fn request(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        shape: Shape<'_>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NoToken)?;
        let http = self
            .http
            .get(index)
            .ok_or_else(|| ClientError::Setup(format!("no coordinator {index}")))?;
        let url = format!("{}{path}", self.coordinators.url(index));
        Ok(shape(http.request(method, url).bearer_auth(token)))
    }

    /// Sends a request to whichever coordinator leads: the last leader first, the
    /// next one when a connection fails or a standby refuses (and, for a request that
    /// is [`Resendable::Always`], after any failed exchange or a 503). The answer of
    /// the one that answered, whatever its status, but a 503 already read as an error.
    async fn exchange(
        &self,
        resendable: Resendable,
        method: reqwest::Method,
        path: &str,
        shape: Shape<'_>,
    ) -> Result<(usize, reqwest::Response), ClientError> {
        if self.token.is_none() {
            return Err(ClientError::NoToken);
        }
        let round = self
            .coordinators
            .round(|index, endpoint| {
                let request = self.request(index, method.clone(), path, shape);
                async move {
                    let request = match request {
                        Ok(request) => request,
                        Err(e) => return Tried::Answer(Err(e)),
                    };
                    let failed = |e: &reqwest::Error| {
                        let error = network_error(endpoint, e);
                        // A connection that failed carried nothing.
                        if e.is_connect() || resendable == Resendable::Always {
                            Tried::Next(error)
                        } else {
                            Tried::Answer(Err(error))
                        }
                    };
                    let response = match request.send().await {
                        Ok(response) => response,
                        Err(e) => return failed(&e),
                    };
                    let status = response.status();
                    if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
                        return Tried::Answer(Ok((index, response)));
                    }
                    let url = response.url().to_string();
                    let bytes = match response.bytes().await {
                        Ok(bytes) => bytes,
                        Err(e) => return failed(&e),
                    };
                    let error = error_answer(status, url, &bytes);
                    // A standby applies nothing; a leader's 503 stands unless the
                    // request may be sent again anyway.
                    if standby_refusal(status.as_u16(), &bytes).is_some()
                        || resendable == Resendable::Always
                    {
                        Tried::Next(error)
                    } else {
                        Tried::Answer(Err(error))
                    }
                }
            })
            .await;
        match round {
            Ok(answer) => answer,
            Err(mut missed) if missed.len() == 1 => Err(missed.remove(0).1),
            Err(missed) => Err(ClientError::NoLeader(
                self.coordinators
                    .no_leader(missed.iter().map(|(index, e)| (*index, e.reason()))),
            )),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        resendable: Resendable,
        method: reqwest::Method,
        path: &str,
        shape: Shape<'_>,
    ) -> Result<T, ClientError> {
        let (bytes, url) = self.send_raw(resendable, method, path, shape).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
                // JSON, but not the shape this client knows: a version mismatch.
                ClientError::Decode(e.to_string())
            } else {
                ClientError::Foreign {
                    status: 200,
                    what: "an answer that is not JSON".into(),
                    url,
                    detail: body_detail(&bytes),
                }
            }
        })
    }

    /// The body of a successful answer as it came, with the address it came from; an
    /// error answer as `Api`.
    async fn send_raw(
        &self,
        resendable: Resendable,
        method: reqwest::Method,
        path: &str,
        shape: Shape<'_>,
    ) -> Result<(Vec<u8>, String), ClientError> {
        let (index, response) = self.exchange(resendable, method, path, shape).await?;
        let status = response.status();
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| network_error(&self.coordinators.endpoints()[index], &e))?;
        if status.is_success() {
            Ok((bytes.into(), url))
        } else {
            Err(error_answer(status, url, &bytes))
        }
    }

    /// A GET, sent to the next coordinator after any failure.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        shape: Shape<'_>,
    ) -> Result<T, ClientError> {
        self.send(Resendable::Always, reqwest::Method::GET, path, shape)
            .await
    }

    /// Submits a job. The request carries a fresh `Idempotency-Key`, so when the
    /// answer is lost (a dropped link, a coordinator restart or failover) it is sent
    /// again, to the next coordinator at once when there are several, and after a
    /// pause up to three more times: the coordinators answer a resend with the job
    /// the first try made, never a second job or a second charge.
    pub async fn submit(&self, request: &SubmitJobRequest) -> Result<JobView, ClientError> {
        let mut resend = Resend {
            client: self,
            request,
            key: idempotency_key(),
        };
        let mut backoff = Backoff::new(self.resend_delay, self.resend_delay * 4).with_retries(3);
        retry(&mut backoff, &mut resend).await
    }

    /// Submits several jobs in one request (`POST /v1/jobs/batch`), one result per job.
    /// Sent once: a batch has no idempotency key, so a lost answer is not resent (the
    /// jobs may exist; `jobs` shows them). A standby's refusal or a failed connection
    /// sends it to the next coordinator: it was not applied.
    pub async fn submit_batch(
        &self,
        request: &SubmitBatchRequest,
    ) -> Result<SubmitBatchResponse, ClientError> {
        let body = |b: reqwest::RequestBuilder| b.json(request);
        self.send(
            Resendable::Unsent,
            reqwest::Method::POST,
            "/v1/jobs/batch",
            &body,
        )
        .await
    }

    pub async fn job(&self, id: JobId) -> Result<JobView, ClientError> {
        self.get(&format!("/v1/jobs/{id}"), &|b| b).await
    }

    /// A page of job summaries (no output: [`ApiClient::job`] or [`ApiClient::output`]).
    pub async fn jobs(&self, query: &JobListQuery) -> Result<JobListResponse, ClientError> {
        self.get("/v1/jobs", &query_of(query)).await
    }

    /// A stream of server-sent events at `path` (`client::follow`): the response once
    /// its status is a success. It may last as long as the job: no overall timeout.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let shape = |b: reqwest::RequestBuilder| {
            b.query(query)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .timeout(Duration::from_secs(365 * 24 * 3600))
        };
        let (index, response) = self
            .exchange(Resendable::Always, reqwest::Method::GET, path, &shape)
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| network_error(&self.coordinators.endpoints()[index], &e))?;
        Err(error_answer(status, url, &bytes))
    }

    /// One of a job's outputs, the bytes the coordinator stores (UTF-8 text).
    pub async fn output(&self, id: JobId, stream: OutputStream) -> Result<Vec<u8>, ClientError> {
        let path = format!("/v1/jobs/{id}/{stream}");
        let (bytes, _) = self
            .send_raw(Resendable::Always, reqwest::Method::GET, &path, &|b| b)
            .await?;
        Ok(bytes)
    }

    /// Sent once, as [`ApiClient::submit_batch`] is.
    pub async fn cancel(&self, id: JobId) -> Result<JobView, ClientError> {
        let path = format!("/v1/jobs/{id}/cancel");
        self.send(Resendable::Unsent, reqwest::Method::POST, &path, &|b| b)
            .await
    }

    pub async fn workers(&self) -> Result<WorkersResponse, ClientError> {
        self.get("/v1/workers", &|b| b).await
    }

    pub async fn balance(&self) -> Result<BalanceResponse, ClientError> {
        self.get("/v1/balance", &|b| b).await
    }

    pub async fn ledger(&self, limit: u32) -> Result<LedgerResponse, ClientError> {
        let query = LedgerQuery { limit: Some(limit) };
        self.get("/v1/ledger", &query_of(&query)).await
    }

    /// Waits until a job is terminal by polling it (every 100 ms, backing off to 1 s);
    /// it does not use the live stream, so a dropped stream can never hang `--wait`.
    /// Of several coordinators, a poll that finds none leading (a failover under way)
    /// is tried again, for up to 30 s (`FAILOVER_PATIENCE`).
    pub async fn wait(&self, id: JobId) -> Result<JobView, ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut leaderless_since = None;
        loop {
            match self.job(id).await {
                Ok(view) if view.status.is_terminal() => return Ok(view),
                Ok(_) => leaderless_since = None,
                Err(e @ ClientError::NoLeader(_)) => {
                    let since = *leaderless_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= FAILOVER_PATIENCE {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

/// How long [`ApiClient::wait`] keeps polling while no coordinator of several leads:
/// well past a takeover (a standby leads once the leader's lease runs out).
const FAILOVER_PATIENCE: Duration = Duration::from_secs(30);

/// A query string that serde writes from `query` (absent fields left out).
fn query_of<Q: Serialize + Sync>(
    query: &Q,
) -> impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync + '_ {
    move |b| b.query(query)
}

/// A failed exchange with `endpoint`: `Tls` when TLS refused the coordinator, else
/// `Network`.
fn network_error(endpoint: &Endpoint, e: &reqwest::Error) -> ClientError {
    let url = endpoint.base_url().to_owned();
    match endpoint.tls_problem(e) {
        Some(message) => ClientError::Tls { url, message },
        None => ClientError::Network {
            url,
            message: endpoint.explain(e),
        },
    }
}

/// One submit, sent again under the same key while its answer is lost.
struct Resend<'a> {
    client: &'a ApiClient,
    request: &'a SubmitJobRequest,
    key: String,
}

impl Retry for Resend<'_> {
    type Output = JobView;
    type Error = ClientError;

    async fn attempt(&mut self) -> Result<JobView, ClientError> {
        let (key, request) = (&self.key, self.request);
        let post = |b: reqwest::RequestBuilder| b.header("Idempotency-Key", key).json(request);
        // The key makes a resend safe: to the next coordinator at once.
        self.client
            .send(Resendable::Always, reqwest::Method::POST, "/v1/jobs", &post)
            .await
    }

    /// Only a lost answer is worth a resend (or a round in which no coordinator led:
    /// the next may find the new leader); an answer, even an error, stands.
    async fn pause(&mut self, error: &ClientError, delay: Duration) -> bool {
        let lost = matches!(
            error,
            ClientError::Network { .. } | ClientError::NoLeader(_)
        );
        if lost {
            tokio::time::sleep(delay).await;
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiClient, idempotency_key};
    use gridx_proto::api::{JobListQuery, SubmitJobRequest};
    use gridx_proto::{JobId, JobStatus};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one HTTP request (headers and a Content-Length body); its
    /// Idempotency-Key.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let header = |name: &str| {
                text[..end].lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            let length: usize = header("content-length")?.parse().ok()?;
            if buf.len() >= end + 4 + length {
                return header("idempotency-key");
            }
        }
    }

    #[tokio::test]
    async fn a_submit_whose_answer_was_lost_is_resent_with_the_same_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut keys = Vec::new();
            // First try: read it all, then vanish without an answer.
            let (mut first, _) = listener.accept().await.unwrap();
            keys.push(read_request(&mut first).await);
            drop(first);
            // The resend: answer with the job.
            let (mut second, _) = listener.accept().await.unwrap();
            keys.push(read_request(&mut second).await);
            let body = include_str!("../../../gridx-proto/tests/fixtures/job_view.json");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            second.write_all(answer.as_bytes()).await.unwrap();
            keys
        });
        let endpoint =
            crate::client::Endpoint::new(&format!("http://{addr}"), None, false).unwrap();
        let mut client = ApiClient::new(endpoint, Some("gxu_x".into())).unwrap();
        client.resend_delay = Duration::from_millis(10);
        let request: SubmitJobRequest =
            serde_json::from_str(r#"{"language":"bash","code":"echo hi"}"#).unwrap();
        let job = client.submit(&request).await.expect("the resend succeeds");
        assert_eq!(job.job_id, JobId(42));
        let keys = server.await.unwrap();
        assert_eq!(keys.len(), 2);
        let first = keys[0].clone().expect("the first try carries a key");
        assert_eq!(first.len(), 32);
        assert_eq!(
            keys[1].as_deref(),
            Some(first.as_str()),
            "the resend reuses it"
        );
    }

    /// A one-request HTTP server that answers `answer` and returns the request line.
    async fn answer_once(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream.write_all(answer.as_bytes()).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            request.lines().next().unwrap_or_default().to_owned()
        });
        (addr.to_string(), server)
    }

    #[tokio::test]
    async fn an_answer_that_is_not_the_apis_asks_whether_this_is_a_coordinator() {
        let page = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 48\r\nConnection: close\r\n\r\n<!DOCTYPE html>\n<html><body>\x1b[2Jhi</body></html>";
        let (addr, server) = answer_once(page).await;
        // HOST:PORT without a scheme is http://HOST:PORT.
        let endpoint = crate::client::Endpoint::new(&addr, None, false).unwrap();
        let client = ApiClient::new(endpoint, Some("gxu_x".into())).unwrap();
        let err = client.job(JobId(5)).await.unwrap_err().to_string();
        assert!(err.contains("is this a Grid-X coordinator?"), "{err}");
        assert!(err.contains(&format!("http://{addr}/v1/jobs/5")), "{err}");
        assert!(err.contains("starting \"<!DOCTYPE html>…\""), "{err}");
        assert!(!err.contains("<body>") && !err.contains('\x1b'), "{err}");
        assert_eq!(server.await.unwrap(), "GET /v1/jobs/5 HTTP/1.1");

        let empty = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (addr, server) = answer_once(empty).await;
        // An address ending in /v1 is the coordinator's root: not /v1/v1/jobs.
        let endpoint =
            crate::client::Endpoint::new(&format!("http://{addr}/v1/"), None, false).unwrap();
        let client = ApiClient::new(endpoint, Some("gxu_x".into())).unwrap();
        let err = client.job(JobId(5)).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "HTTP 404 Not Found from http://{addr}/v1/jobs/5 with no body; is this a Grid-X coordinator?"
            )
        );
        assert_eq!(server.await.unwrap(), "GET /v1/jobs/5 HTTP/1.1");
    }

    #[test]
    fn keys_differ_per_submit() {
        assert_ne!(idempotency_key(), idempotency_key());
    }

    #[test]
    fn query_strings_are_written_by_serde_and_leave_out_absent_fields() {
        let endpoint =
            crate::client::Endpoint::new("http://coordinator:8420/", None, true).unwrap();
        let client = ApiClient::new(endpoint, Some("gxu_x".into())).unwrap();
        let query = |q: &JobListQuery| {
            let request = client
                .request(0, reqwest::Method::GET, "/v1/jobs", &super::query_of(q))
                .and_then(|b| {
                    b.build()
                        .map_err(|e| super::ClientError::Decode(e.to_string()))
                });
            request.map(|r| r.url().query().map(str::to_owned))
        };
        let full = JobListQuery {
            status: Some(JobStatus::TimedOut),
            limit: Some(5),
            before: Some(JobId(9)),
            all: Some(true),
        };
        assert_eq!(
            query(&full).ok().flatten().as_deref(),
            Some("status=timed_out&limit=5&before=9&all=true")
        );
        let some = JobListQuery {
            limit: Some(200),
            ..JobListQuery::default()
        };
        assert_eq!(query(&some).ok().flatten().as_deref(), Some("limit=200"));
    }
}
