//! The store's PostgreSQL schema (`store::postgres_schema`) on a real throwaway
//! cluster: it applies to an empty database, and the database itself keeps the
//! ledger and the audit log append-only and the balances and flags within bounds, as
//! SQLite's schema does.

#![allow(clippy::unwrap_used)] // a test: a failing unwrap is a failing test

use gridx_e2e::postgres::Cluster;
use gridx_e2e::skip::Tool;
use gridx_e2e::skip_unless;
use gridx_server::store::postgres_schema::{BASELINE, BASELINE_LEVEL};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The database's own message for a refused statement.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("the database took {sql:?}"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string()),
    }
}

#[tokio::test]
async fn the_baseline_applies_and_the_database_keeps_the_ledger_append_only() {
    let cluster = skip_unless!(Tool::Postgres, Cluster::start());
    let mut client = connect(&cluster.url()).await;
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(BASELINE).await.unwrap();
    tx.commit().await.unwrap();
    let level: i64 = client
        .query_one("SELECT level FROM schema_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(level, BASELINE_LEVEL);

    // A user, a job (its id from RETURNING, as on SQLite), and its hold.
    client
        .batch_execute(
            "INSERT INTO users (name, token_hash, created_at) VALUES ('alice', '\\x01', 0);
             UPDATE accounts SET balance = -1000 WHERE id = 'mint';
             INSERT INTO accounts (id, balance) VALUES ('user:alice', 1000);",
        )
        .await
        .unwrap();
    let job: i64 = client
        .query_one(
            "INSERT INTO jobs (\"user\", status, language, code, stdin, timeout_s, memory_mb,
                               priority, max_output_bytes, cost, submitted_at, gpus)
             VALUES ('alice', 'queued', 'python', 'print(1)', '', 30, 256, 0, 1024, 1000, 0, 1)
             RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(job, 1);
    client
        .execute(
            "INSERT INTO ledger (at, kind, from_account, to_account, amount, job_id,
                                 from_balance_after, to_balance_after)
             VALUES (0, 'hold', 'user:alice', 'escrow', 1000, $1, 0, 1000)",
            &[&job],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO audit (at, actor, action, subject, detail)
             VALUES (0, 'root', 'user add', 'alice', '{}')",
            &[],
        )
        .await
        .unwrap();

    // Append-only, whoever asks: UPDATE, DELETE and TRUNCATE are refused.
    for sql in [
        "UPDATE ledger SET amount = 1",
        "DELETE FROM ledger",
        "TRUNCATE ledger",
    ] {
        assert_eq!(
            refused(&client, sql).await,
            "the ledger is append-only",
            "{sql}"
        );
    }
    for sql in [
        "UPDATE audit SET actor = 'x'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        assert_eq!(
            refused(&client, sql).await,
            "the audit log is append-only",
            "{sql}"
        );
    }
    // Bounds the schema keeps on both engines.
    for (sql, constraint) in [
        (
            "UPDATE accounts SET balance = -1 WHERE id = 'user:alice'",
            "accounts_check",
        ),
        ("UPDATE jobs SET gpus = -1", "jobs_gpus_check"),
        ("UPDATE jobs SET status = 'lost'", "jobs_status_check"),
        (
            "INSERT INTO ledger (at, kind, from_account, to_account, amount,
                                 from_balance_after, to_balance_after)
             VALUES (0, 'gift', 'mint', 'escrow', 1, 0, 0)",
            "ledger_kind_check",
        ),
    ] {
        let why = refused(&client, sql).await;
        assert!(why.contains(constraint), "{sql}: {why}");
    }
    let entries: i64 = client
        .query_one("SELECT count(*) FROM ledger", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(entries, 1, "nothing was lost or changed");
}
