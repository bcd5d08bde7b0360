//! `GET /v1/jobs/{id}/output`: a job's output as server-sent events, from its start
//! and then as its worker sends it, until the job ends (docs/api.md).
//!
//! Events: `output` (`OutputChunk`: a stream, an offset, text), `reset` (the job's
//! attempt ended and another will run: forget what came so far), and last `end`
//! (`OutputEnd`), after which the stream closes. The viewer subscribes to the job's
//! live pieces before it reads the store, and drops by offset what it already sent,
//! so a piece is neither missed nor sent twice. Streams count against the same
//! limits as `/v1/events` (`server.max_event_streams…`), and one whose client does not
//! take an event within `server.send_timeout_s` is closed.

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::live_output::LiveEvent;
use crate::metrics::Shed;
use crate::store::live_output::{self, Snapshot};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use gridx_proto::JobId;
use gridx_proto::api::{OutputChunk, OutputStream};
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
    // Subscribed before the first read, so nothing stored after it is missed.
    let live = state.events.live().subscribe(id);
    let first = state
        .reader
        .read(move |conn| live_output::snapshot(conn, id))
        .await?
        .filter(|s| user.is_admin || s.user == user.name);
    let Some(first) = first else {
        drop(live);
        state.events.live().release(id);
        return Err(ApiError::not_found("job"));
    };
    let slot = match state.limits.event_streams.acquire(peer) {
        Ok(slot) => slot,
        Err(refused) => {
            drop(live);
            state.events.live().release(id);
            state.metrics.shed(Shed::Connection);
            return Err(refused.into());
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(QUEUED_EVENTS);
    tokio::spawn(async move {
        let _slot = slot;
        let hub = state.events.live().clone();
        let mut viewer = Viewer {
            state,
            id,
            tx,
            attempt: first.attempt,
            sent: [0, 0],
            ended: false,
        };
        if follow {
            viewer.run(first, live).await;
        } else {
            drop(live);
            let _ = viewer.show(first).await;
        }
        hub.release(id);
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
    /// `end` went out: the stream is over.
    ended: bool,
}

/// Why a viewer stops.
enum Stop {
    /// The client went, or took too long.
    Gone,
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

impl Viewer {
    async fn run(&mut self, first: Snapshot, mut live: broadcast::Receiver<LiveEvent>) {
        let mut shutdown = self.state.shutdown.clone();
        let mut snapshot = Some(first);
        loop {
            let snap = match snapshot.take() {
                Some(s) => s,
                None => {
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
            if self.show(snap).await.is_err() {
                return;
            }
            if self.ended {
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
                    Ok(LiveEvent::Chunk(chunk)) => {
                        if chunk.offset > self.sent[index(chunk.stream)] {
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

    async fn show(&mut self, snap: Snapshot) -> Result<(), Stop> {
        // An attempt that ended without a result (the job waits for another) or a
        // new attempt: what was sent is void.
        if snap.attempt != self.attempt || snap.queued {
            self.attempt = snap.attempt;
            if self.sent != [0, 0] {
                self.sent = [0, 0];
                self.send(Event::default().event("reset").data("{}"))
                    .await?;
            }
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

    /// Sends the part of `piece` not sent yet.
    async fn piece(&mut self, piece: &OutputChunk) -> Result<(), Stop> {
        let at = index(piece.stream);
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
