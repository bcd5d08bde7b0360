//! A typed client of the coordinator's HTTP API.

use gridx_proto::api::{
    BalanceResponse, ErrorBody, JobListResponse, JobView, LedgerResponse, SubmitJobRequest,
    WorkersResponse,
};
use gridx_proto::{JobId, JobStatus};
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
    #[error("unexpected answer from the coordinator: {0}")]
    Decode(String),
    #[error(
        "no API token: pass --token or set GRIDX_TOKEN (an operator creates one with `gridx-server user add`)"
    )]
    NoToken,
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(server: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: server.trim().trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
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

    async fn send<T: DeserializeOwned>(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = builder.send().await.map_err(|e| ClientError::Network {
            url: self.base.clone(),
            message: root_cause(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ClientError::Network {
            url: self.base.clone(),
            message: root_cause(&e),
        })?;
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
        } else {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => Err(ClientError::Api {
                    status: status.as_u16(),
                    code: body.error.code.as_str().to_owned(),
                    message: body.error.message,
                }),
                Err(_) => Err(ClientError::Api {
                    status: status.as_u16(),
                    code: "http_error".into(),
                    message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                }),
            }
        }
    }

    pub async fn submit(&self, request: &SubmitJobRequest) -> Result<JobView, ClientError> {
        self.send(
            self.request(reqwest::Method::POST, "/v1/jobs")?
                .json(request),
        )
        .await
    }

    pub async fn job(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/jobs/{id}"))?)
            .await
    }

    pub async fn jobs(
        &self,
        status: Option<JobStatus>,
        limit: u32,
        before: Option<JobId>,
        all: bool,
    ) -> Result<JobListResponse, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(s) = status {
            query.push(("status", s.as_str().into()));
        }
        if let Some(b) = before {
            query.push(("before", b.to_string()));
        }
        if all {
            query.push(("all", "true".into()));
        }
        self.send(
            self.request(reqwest::Method::GET, "/v1/jobs")?
                .query(&query),
        )
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
        self.send(
            self.request(reqwest::Method::GET, "/v1/ledger")?
                .query(&[("limit", limit)]),
        )
        .await
    }

    /// Waits until a job is terminal: follows the live stream when it can, and polls
    /// as a fallback, so `--wait` never hangs on a dropped stream.
    pub async fn wait(&self, id: JobId) -> Result<JobView, ClientError> {
        let mut delay = Duration::from_millis(100);
        loop {
            let view = self.job(id).await?;
            if view.status.is_terminal() {
                return Ok(view);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
