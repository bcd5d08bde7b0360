//! `GET /v1/jobs/{id}/output`: a job's output as server-sent events, from its start
//! and then as its worker sends it, until the job ends (docs/api.md).
//!
//! Events: `output` (`OutputChunk`: a stream, an offset, text), `reset` (forget what
//! came so far: the attempt ended without an accepted result and another runs, or
//! the accepted output does not go on from what was sent), and last `end`
//! (`OutputEnd`), after which the stream closes. The viewer subscribes to the job's
//! live pieces before it reads the store, and drops by offset what it already sent,
//! so a piece is neither missed nor sent twice. Streams count against the same
//! limits as `/v1/events` (`server.max_event_streams…`), and one whose client does not
//! take an event within `server.send_timeout_s` is closed.

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::live_output::{Following, LiveEvent};
use crate::metrics::Shed;
use crate::store::live_output::{self, Snapshot};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use gridx_proto::JobId;
use gridx_proto::api::{OutputChunk, OutputStream};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Events a viewer's connection may have queued before the viewer waits for it.
const QUEUED_EVENTS: usize = 32;

/// `?follow=false`: only what is there now, then the stream closes (with `end` if
/// the job has ended). Absent or `true`: until the job ends.
#[derive(Debug, serde::Deserialize)]
pub struct FollowQuery {
    follow: Option<bool>,
}

pub async fn follow(
    State(state): State<AppState>,
    super::live::Peer(peer): super::live::Peer,
    user: AuthUser,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<FollowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = super::jobs::parse_id(id)?;
    let follow = match query {
        Ok(Query(q)) => q.follow.unwrap_or(true),
        Err(e) => {
            return Err(ApiError::invalid(format!(
                "follow must be true or false: {e}"
            )));
        }
    };
    let slot = match state.limits.event_streams.acquire(peer) {
        Ok(slot) => slot,
        Err(refused) => {
            state.metrics.shed(Shed::Connection);
            return Err(refused.into());
        }
    };
    // Subscribed before the first read, so nothing stored after it is missed. The
    // subscription releases the job's entry in the hub however this ends.
    let live = state.events.live().follow(id);
    let first = state
        .reader
        .read(move |conn| live_output::snapshot(conn, id))
        .await?
        .filter(|s| user.is_admin || s.user == user.name)
        .ok_or_else(|| ApiError::not_found("job"))?;
    let (tx, rx) = mpsc::channel::<Event>(QUEUED_EVENTS);
    tokio::spawn(async move {
        let _slot = slot;
        let mut viewer = Viewer {
            state,
            id,
            tx,
            attempt: first.attempt,
            sent: [0, 0],
            digests: [Sha256::new(), Sha256::new()],
            ended: false,
        };
        if follow {
            viewer.run(first, live).await;
        } else {
            drop(live);
            let _ = viewer.show(first).await;
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

struct Viewer {
    state: AppState,
    id: JobId,
    tx: mpsc::Sender<Event>,
    attempt: u32,
    /// Bytes of each stream sent: `[stdout, stderr]`.
    sent: [u64; 2],
    /// The SHA-256 of what was sent of each stream, to check at the end that the
    /// stored output goes on from it.
    digests: [Sha256; 2],
    /// `end` went out: the stream is over.
    ended: bool,
}

/// Why a viewer stops.
enum Stop {
    /// The client went, or took too long.
    Gone,
}

impl Viewer {
    async fn run(&mut self, first: Snapshot, mut live: Following) {
        let mut shutdown = self.state.shutdown.clone();
        let mut snapshot = Some(first);
        loop {
            let snap = match snapshot.take() {
                Some(s) => s,
                None => {
                    // What is queued may be older than what the store holds now.
                    live.skip_queued();
                    let id = self.id;
                    match self
                        .state
                        .reader
                        .read(move |conn| live_output::snapshot(conn, id))
                        .await
                    {
                        Ok(Some(s)) => s,
                        _ => return,
                    }
                }
            };
            if self.show(snap).await.is_err() || self.ended {
                return;
            }
            // Follow until the job moves on or a piece does not continue what was sent.
            loop {
                let event = tokio::select! {
                    event = live.recv() => event,
                    () = crate::app::signalled(&mut shutdown) => return,
                    () = self.tx.closed() => return,
                };
                match event {
                    Ok(LiveEvent::Chunk { attempt, chunk }) => {
                        if attempt != self.attempt || chunk.offset > self.sent[chunk.stream.index()]
                        {
                            break;
                        }
                        if self.piece(&chunk).await.is_err() {
                            return;
                        }
                    }
                    Ok(LiveEvent::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }

    /// Starts the output over: `reset`, and nothing counted as sent.
    async fn reset(&mut self) -> Result<(), Stop> {
        self.sent = [0, 0];
        self.digests = [Sha256::new(), Sha256::new()];
        self.send(Event::default().event("reset").data("{}")).await
    }

    async fn show(&mut self, snap: Snapshot) -> Result<(), Stop> {
        // An attempt that ended without a result (the job waits for another: a lost
        // worker, or a replica for its result check) or a new attempt: what was sent
        // is void.
        if snap.attempt != self.attempt || snap.queued {
            self.attempt = snap.attempt;
            if self.sent != [0, 0] {
                self.reset().await?;
            }
        }
        // The stored output of an ended job must go on from what was sent live;
        // should it not (the accepted result is another replica's), it is sent whole
        // after a `reset`.
        if snap.end.is_some() && !self.continued_by(&snap.pieces) {
            self.reset().await?;
        }
        for piece in &snap.pieces {
            self.piece(piece).await?;
        }
        if let Some(end) = snap.end {
            let event = Event::default().event("end").json_data(&end);
            if let Ok(event) = event {
                self.send(event).await?;
            }
            self.ended = true;
        }
        Ok(())
    }

    /// Whether the whole output in `pieces` (one per stream from offset 0) starts with
    /// what was sent of each stream.
    fn continued_by(&self, pieces: &[OutputChunk]) -> bool {
        OutputStream::BOTH.into_iter().all(|stream| {
            let at = stream.index();
            let sent = usize::try_from(self.sent[at]).unwrap_or(usize::MAX);
            if sent == 0 {
                return true;
            }
            let text = pieces
                .iter()
                .find(|p| p.stream == stream && p.offset == 0)
                .map_or("", |p| p.text.as_str());
            text.get(..sent).is_some_and(|prefix| {
                Sha256::digest(prefix.as_bytes()) == self.digests[at].clone().finalize()
            })
        })
    }

    /// Sends the part of `piece` not sent yet.
    async fn piece(&mut self, piece: &OutputChunk) -> Result<(), Stop> {
        let at = piece.stream.index();
        let have = self.sent[at];
        let end = piece.offset + piece.text.len() as u64;
        if piece.offset > have || end <= have {
            return Ok(());
        }
        let skip = usize::try_from(have - piece.offset).unwrap_or(usize::MAX);
        let Some(text) = piece.text.get(skip..) else {
            return Ok(());
        };
        let chunk = OutputChunk {
            stream: piece.stream,
            offset: have,
            text: text.to_owned(),
        };
        if let Ok(event) = Event::default().event("output").json_data(&chunk) {
            self.send(event).await?;
        }
        self.digests[at].update(chunk.text.as_bytes());
        self.sent[at] = end;
        Ok(())
    }

    async fn send(&self, event: Event) -> Result<(), Stop> {
        let timeout = Duration::from_secs(u64::from(self.state.config.send_timeout_s));
        match tokio::time::timeout(timeout, self.tx.send(event)).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.state.metrics.shed(Shed::Lagged);
                Err(Stop::Gone)
            }
        }
    }
}
