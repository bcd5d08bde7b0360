//! Read-only connections for the API, used on tokio's blocking pool so that no query
//! that may take long (a page of jobs, a ledger) runs on an async worker thread. The
//! one exception is [`Reader::read_small`], a one-row lookup by key on SQLite.

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

    /// Runs `f` at once on the calling thread when the store is SQLite; elsewhere as
    /// [`Reader::read`] does. Only for a lookup by an index of one row in a table
    /// small enough to stay in the page cache (a token's user, on every request):
    /// handing such a query to the blocking pool cost more than the query, a fifth of
    /// the HTTP threads' CPU under load (docs/benchmarks.md, "Round 2"). PostgreSQL's
    /// calls wait on the network, so they still go to the pool, and so does any read
    /// when every connection is in use.
    pub async fn read_small<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> StoreResult<T> + Send + 'static,
    {
        if !matches!(self.inner.location, Location::Sqlite(_)) {
            return self.read(f).await;
        }
        let Ok(permit) = self.inner.open.clone().try_acquire_owned() else {
            return self.read(f).await;
        };
        // A statement of its own: the pool's lock must be released before any await.
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        let Some(conn) = idle else {
            // Opening a connection reads the file: not on this thread.
            drop(permit);
            return self.read(f).await;
        };
        let result = f(&conn);
        self.give_back(conn);
        drop(permit);
        result
    }

    /// Keeps a connection for the next read, unless broken or the pool is full.
    fn give_back(&self, conn: Db) {
        if !conn.is_broken()
            && let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < self.inner.max_idle
        {
            idle.push(conn);
        }
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.clone();
        let permit = self
            .inner
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.inner.idle.lock().map(|mut idle| idle.pop()) {
                Ok(Some(conn)) => conn,
                _ => open_reader_at(&pool.inner.location)?,
            };
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user_count(conn: &Db) -> StoreResult<(i64, std::thread::ThreadId)> {
        let n = conn.query_row("SELECT count(*) FROM users", (), |r| r.get(0))?;
        Ok((n, std::thread::current().id()))
    }

    /// The first small read has no idle connection, so it opens one on the blocking
    /// pool; the second reuses that connection on the calling thread.
    #[tokio::test(flavor = "current_thread")]
    async fn a_small_read_runs_inline_once_a_connection_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        drop(crate::store::open_writer(dir.path()).unwrap());
        let reader = Reader::new(Location::Sqlite(dir.path().to_owned()), 4);
        let here = std::thread::current().id();
        let (n, first) = reader.read_small(user_count).await.unwrap();
        assert_eq!(n, 0);
        assert_ne!(
            first, here,
            "no idle connection: opened on the blocking pool"
        );
        let (_, second) = reader.read_small(user_count).await.unwrap();
        assert_eq!(second, here, "an idle connection: the lookup runs inline");
        assert_eq!(reader.inner.idle.lock().unwrap().len(), 1, "given back");
    }
}
