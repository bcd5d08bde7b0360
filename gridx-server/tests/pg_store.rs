//! The store boundary on PostgreSQL, below the API: what its transactions promise.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::skip::Tool;
use gridx_e2e::skip_unless;
use gridx_server::store::{StoreError, postgres};

/// PostgreSQL aborts a transaction at its first failed statement, and its `COMMIT`
/// then rolls back without an error: a caller that went on after a failure must hear
/// that nothing was committed, not believe its earlier writes landed.
#[test]
fn a_transaction_with_a_failed_statement_is_not_committed() {
    let cluster = skip_unless!(Tool::Postgres, gridx_e2e::postgres::shared());
    let url = cluster.create_database().unwrap();
    let db = postgres::open(&url, None).unwrap();
    let tx = db.transaction().unwrap();
    tx.execute(
        "INSERT INTO users (name, token_hash, created_at) VALUES ('a', ?1, 0)",
        [vec![1u8]],
    )
    .unwrap();
    assert!(
        tx.execute("INSERT INTO no_such_table VALUES (1)", ())
            .is_err()
    );
    assert!(matches!(tx.commit(), Err(StoreError::Aborted)));
    let users: i64 = db
        .query_row("SELECT count(*) FROM users", (), |r| r.get(0))
        .unwrap();
    assert_eq!(users, 0);
    // The connection is usable again: the next transaction commits.
    let tx = db.transaction().unwrap();
    tx.execute(
        "INSERT INTO users (name, token_hash, created_at) VALUES ('b', ?1, 0)",
        [vec![2u8]],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// A writer fenced by an epoch that no longer leads cannot begin a transaction.
#[test]
fn a_writer_of_an_old_epoch_cannot_begin() {
    let cluster = skip_unless!(Tool::Postgres, gridx_e2e::postgres::shared());
    let url = cluster.create_database().unwrap();
    let admin = postgres::open(&url, None).unwrap();
    admin
        .execute_batch(
            "INSERT INTO gridx_leadership (id, epoch, leader, backend_pid, renewed_at)
             VALUES (1, 2, 'b', 0, now())",
        )
        .unwrap();
    let deposed = postgres::open(&url, Some(1)).unwrap();
    assert!(matches!(
        deposed.transaction(),
        Err(StoreError::Deposed {
            ours: 1,
            current: Some(2)
        })
    ));
    let leader = postgres::open(&url, Some(2)).unwrap();
    leader.transaction().unwrap().commit().unwrap();
}
