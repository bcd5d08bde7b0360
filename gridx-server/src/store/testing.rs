//! An in-memory store for unit tests: migrated, with users, their ledger accounts and
//! worker 1.

use super::{ledger, schema};
use crate::store::Db;
use gridx_proto::{JobSpec, Language};

/// A migrated in-memory store with these users (each with an empty account) and
/// worker 1, owned by `worker_owner` (one of `users`).
pub(crate) fn memory_store(users: &[&str], worker_owner: &str) -> Db {
    let mut sqlite = rusqlite::Connection::open_in_memory().expect("in-memory sqlite");
    schema::migrations()
        .to_latest(&mut sqlite)
        .expect("migrations apply");
    let conn = Db::from(sqlite);
    for user in users {
        conn.execute(
            "INSERT INTO users (name, token_hash, created_at) VALUES (?1, ?2, 0)",
            crate::params![user, user.as_bytes()],
        )
        .expect("user row");
        conn.execute(
            "INSERT INTO accounts (id, balance) VALUES (?1, 0)",
            [ledger::user_account(user)],
        )
        .expect("account row");
    }
    conn.execute(
        "INSERT INTO workers (id, name, owner, token_hash, created_at, trusted) VALUES (1, 'w', ?1, x'01', 0, 1)",
        [worker_owner],
    )
    .expect("worker row");
    conn
}

/// A small valid bash job.
pub(crate) fn spec() -> JobSpec {
    JobSpec {
        gpu_memory_mb: None,
        gpus: 0,
        language: Language::Bash,
        code: "echo secret".into(),
        stdin: "input".into(),
        timeout_s: 5,
        memory_mb: 64,
        priority: 0,
        max_output_bytes: 1024,
    }
}
