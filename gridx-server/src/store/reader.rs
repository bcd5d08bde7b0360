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
}

impl Reader {
    pub fn new(location: Location, max_idle: usize) -> Self {
        Self {
            inner: Arc::new(ReaderInner {
                location,
                idle: Mutex::new(Vec::new()),
                max_idle,
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
        tokio::task::spawn_blocking(move || {
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
