//! A typed client of the coordinator's HTTP API.

use crate::backoff::{Backoff, Retry, retry};
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
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Foreign { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    base: String,
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
    /// A client of the coordinator at `endpoint` (its TLS included).
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Result<Self, ClientError> {
        let http = endpoint
            .http_client()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Setup(endpoint.explain(&e)))?;
        Ok(Self {
            http,
            base: endpoint.base_url().to_owned(),
            endpoint,
            token,
            resend_delay: Duration::from_millis(500),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Where the coordinator is and how to reach it (for the live stream).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let token = self.token.as_deref().ok_or(ClientError::NoToken)?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token))
    }

    /// A GET whose query string serde writes from `query` (absent fields left out).
    fn get<Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(self.request(reqwest::Method::GET, path)?.query(query))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let url = builder
            .try_clone()
            .and_then(|b| b.build().ok())
            .map(|r| r.url().to_string())
            .unwrap_or_else(|| self.base.clone());
        let bytes = self.send_raw(builder).await?;
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

    /// The body of a successful answer as it came; an error answer as `Api`.
    async fn send_raw(&self, builder: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let response = builder.send().await.map_err(|e| self.network_error(&e))?;
        let status = response.status();
        let url = response.url().to_string();
        let bytes = response.bytes().await.map_err(|e| self.network_error(&e))?;
        if status.is_success() {
            Ok(bytes.into())
        } else {
            Err(error_answer(status, url, &bytes))
        }
    }

    /// A failed exchange: `Tls` when TLS refused the coordinator, else `Network`.
    fn network_error(&self, e: &reqwest::Error) -> ClientError {
        let url = self.base.clone();
        match self.endpoint.tls_problem(e) {
            Some(message) => ClientError::Tls { url, message },
            None => ClientError::Network {
                url,
                message: self.endpoint.explain(e),
            },
        }
    }

    /// Submits a job. The request carries a fresh `Idempotency-Key`, so when the
    /// answer is lost (a dropped link, a coordinator restart) it is sent again, up to
    /// three more times: the coordinator answers a resend with the job the first try
    /// made, never a second job or a second charge.
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
    /// jobs may exist; `jobs` shows them).
    pub async fn submit_batch(
        &self,
        request: &SubmitBatchRequest,
    ) -> Result<SubmitBatchResponse, ClientError> {
        self.send(
            self.request(reqwest::Method::POST, "/v1/jobs/batch")?
                .json(request),
        )
        .await
    }

    pub async fn job(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/jobs/{id}"))?)
            .await
    }

    /// A page of job summaries (no output: [`ApiClient::job`] or [`ApiClient::output`]).
    pub async fn jobs(&self, query: &JobListQuery) -> Result<JobListResponse, ClientError> {
        self.send(self.get("/v1/jobs", query)?).await
    }

    /// One of a job's outputs, the bytes the coordinator stores (UTF-8 text).
    /// A stream of server-sent events at `path` (`client::follow`): the response once
    /// its status is a success. It may last as long as the job: no overall timeout.
    pub async fn stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let builder = self
            .request(reqwest::Method::GET, path)?
            .query(query)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(365 * 24 * 3600));
        let response = builder.send().await.map_err(|e| self.network_error(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let url = response.url().to_string();
        let bytes = response.bytes().await.map_err(|e| self.network_error(&e))?;
        Err(error_answer(status, url, &bytes))
    }

    pub async fn output(&self, id: JobId, stream: OutputStream) -> Result<Vec<u8>, ClientError> {
        let path = format!("/v1/jobs/{id}/{stream}");
        self.send_raw(self.request(reqwest::Method::GET, &path)?)
            .await
    }

    pub async fn cancel(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(self.request(reqwest::Method::POST, &format!("/v1/jobs/{id}/cancel"))?)
            .await
    }

    pub async fn workers(&self) -> Result<WorkersResponse, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/v1/workers")?)
            .await
    }

    pub async fn balance(&self) -> Result<BalanceResponse, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/v1/balance")?)
            .await
    }

    pub async fn ledger(&self, limit: u32) -> Result<LedgerResponse, ClientError> {
        let query = LedgerQuery { limit: Some(limit) };
        self.send(self.get("/v1/ledger", &query)?).await
    }

    /// Waits until a job is terminal by polling it (every 100 ms, backing off to 1 s);
    /// it does not use the live stream, so a dropped stream can never hang `--wait`.
    pub async fn wait(&self, id: JobId) -> Result<JobView, ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            let view = self.job(id).await?;
            if view.status.is_terminal() {
                return Ok(view);
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
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
        let post = self
            .client
            .request(reqwest::Method::POST, "/v1/jobs")?
            .header("Idempotency-Key", &self.key)
            .json(self.request);
        self.client.send(post).await
    }

    /// Only a lost answer is worth a resend; an answer, even an error, stands.
    async fn pause(&mut self, error: &ClientError, delay: Duration) -> bool {
        let lost = matches!(error, ClientError::Network { .. });
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
            let request = client.get("/v1/jobs", q).and_then(|b| {
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
