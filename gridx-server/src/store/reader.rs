//! Read-only connections for the API, used on tokio's blocking pool so that no SQLite
//! call ever runs on an async worker thread.

use super::{Location, StoreError, StoreResult, open_reader_at};
use crate::store::Db;
use std::sync::{Arc, Mutex};

/// A small pool of read-only connections.
#[derive(Clone)]
pub struct Reader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    location: Location,
    idle: Mutex<Vec<super::Db>>,
    max_idle: usize,
    /// Reads at once, so connections open at once: a burst of requests waits here
    /// rather than open a PostgreSQL session each (the server's `max_connections`
    /// is shared with the standbys and the admin commands).
    open: Arc<tokio::sync::Semaphore>,
}

/// The most reads at once, and so connections open at once.
pub const MAX_OPEN: usize = 32;

impl Reader {
    pub fn new(location: Location, max_idle: usize) -> Self {
        Self {
            inner: Arc::new(ReaderInner {
                location,
                idle: Mutex::new(Vec::new()),
                max_idle,
                open: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN)),
            }),
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permit = inner
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match inner.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => open_reader_at(&inner.location)?,
            };
            let result = f(&conn);
            if !conn.is_broken()
                && let Ok(mut idle) = inner.idle.lock()
                && idle.len() < inner.max_idle
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }
}
