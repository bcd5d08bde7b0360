//! Following a job's output (`GET /v1/jobs/{id}/output`, server-sent events): what
//! `gridx-tui logs`, `submit --wait` and the dashboard's details use.

use crate::client::api::{ApiClient, ClientError};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use gridx_proto::JobId;
use gridx_proto::api::{OutputChunk, OutputEnd};
use std::time::Duration;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// More output.
    Output(OutputChunk),
    /// The attempt ended and another will run: what came so far is void.
    Reset,
    /// The job ended (the last event).
    End(OutputEnd),
}

/// The coordinator sends a keep-alive every 15 s; three missed mean the link is gone.
const SILENCE: Duration = Duration::from_secs(45);

/// Reads the job's output: what it printed so far, and with `follow` what it prints
/// until it ends. `on` gets each event; the stream closes after `End` (with `follow`,
/// or if the job had already ended) or after what is there (without `follow`).
pub async fn follow_output(
    client: &ApiClient,
    id: JobId,
    follow: bool,
    mut on: impl FnMut(Followed),
) -> Result<(), ClientError> {
    let path = format!("/v1/jobs/{id}/output");
    let response = client
        .stream(&path, &[("follow", if follow { "true" } else { "false" })])
        .await?;
    let mut events = response.bytes_stream().eventsource();
    loop {
        let next = match tokio::time::timeout(SILENCE, events.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(ClientError::Network {
                    url: client.base_url().to_owned(),
                    message: format!("the output stream was silent for {} s", SILENCE.as_secs()),
                });
            }
        };
        let Some(event) = next else {
            return Ok(());
        };
        let event = event.map_err(|e| ClientError::Network {
            url: client.base_url().to_owned(),
            message: e.to_string(),
        })?;
        let decode = |e: serde_json::Error| ClientError::Decode(e.to_string());
        match event.event.as_str() {
            "output" => on(Followed::Output(
                serde_json::from_str(&event.data).map_err(decode)?,
            )),
            "reset" => on(Followed::Reset),
            "end" => {
                on(Followed::End(
                    serde_json::from_str(&event.data).map_err(decode)?,
                ));
                return Ok(());
            }
            // Unknown events are for newer clients.
            _ => {}
        }
    }
}
