//! Schema migrations, versioned in the code (SQLite's `user_version` holds the level).
//! Never edit a released migration: append a new one.

use rusqlite_migration::{M, Migrations};

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
) STRICT;

-- Balances in milli-credits. 'mint' is the source of every grant and the only
-- account allowed below zero; 'escrow' holds the cost of unsettled jobs.
CREATE TABLE accounts (
    id       TEXT PRIMARY KEY,
    balance  INTEGER NOT NULL DEFAULT 0,
    CHECK (id = 'mint' OR balance >= 0)
) STRICT;
INSERT INTO accounts (id, balance) VALUES ('mint', 0), ('escrow', 0), ('platform', 0);

CREATE TABLE workers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL REFERENCES users(name),
    token_hash  BLOB NOT NULL UNIQUE,
    revoked     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER
) STRICT;

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    user              TEXT NOT NULL REFERENCES users(name),
    status            TEXT NOT NULL CHECK (status IN
                        ('queued','running','succeeded','failed','timed_out','cancelled','error')),
    language          TEXT NOT NULL,
    code              TEXT NOT NULL,
    stdin             TEXT NOT NULL,
    timeout_s         INTEGER NOT NULL,
    memory_mb         INTEGER NOT NULL,
    priority          INTEGER NOT NULL,
    max_output_bytes  INTEGER NOT NULL,
    cost              INTEGER NOT NULL,
    submitted_at      INTEGER NOT NULL,
    assigned_at       INTEGER,
    started_at        INTEGER,
    finished_at       INTEGER,
    worker_id         INTEGER REFERENCES workers(id),
    attempts          INTEGER NOT NULL DEFAULT 0,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    exit_code         INTEGER,
    stdout            TEXT NOT NULL DEFAULT '',
    stderr            TEXT NOT NULL DEFAULT '',
    stdout_truncated  INTEGER NOT NULL DEFAULT 0,
    stderr_truncated  INTEGER NOT NULL DEFAULT 0,
    duration_ms       INTEGER,
    reason            TEXT,
    message           TEXT,
    output_pruned     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX jobs_by_user ON jobs(user, id);
CREATE INDEX jobs_live ON jobs(status) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE output_pruned = 0;

-- Double-entry, append-only: every movement names the account it leaves and the
-- account it enters, with both balances after it.
CREATE TABLE ledger (
    id                  INTEGER PRIMARY KEY,
    at                  INTEGER NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('grant','hold','reward','fee','refund')),
    from_account        TEXT NOT NULL REFERENCES accounts(id),
    to_account          TEXT NOT NULL REFERENCES accounts(id),
    amount              INTEGER NOT NULL CHECK (amount > 0),
    job_id              INTEGER REFERENCES jobs(id),
    from_balance_after  INTEGER NOT NULL,
    to_balance_after    INTEGER NOT NULL
) STRICT;
CREATE INDEX ledger_from ON ledger(from_account, id);
CREATE INDEX ledger_to ON ledger(to_account, id);
CREATE INDEX ledger_job ON ledger(job_id);

CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"#,
        ),
        // Idempotency keys of submits: a client that lost the answer to a submit
        // (a dropped connection, a coordinator crash) sends it again with the same key
        // and gets the job it already made, instead of a second job and a second hold.
        // Written in the transaction that stores the job.
        M::up(
            r#"
CREATE TABLE submit_keys (
    user            TEXT NOT NULL REFERENCES users(name),
    key             TEXT NOT NULL,
    request_sha256  TEXT NOT NULL,
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (user, key)
) WITHOUT ROWID;
"#,
        ),
        // The operator, not the worker, decides capacity and precedence: the most job
        // attempts a worker is given at once whatever its `hello` claims (NULL: its
        // claim), and the highest priority a user may submit (existing users get 0).
        M::up(
            r#"
ALTER TABLE workers ADD COLUMN max_slots INTEGER CHECK (max_slots IS NULL OR max_slots >= 1);
ALTER TABLE users ADD COLUMN max_priority INTEGER NOT NULL DEFAULT 0 CHECK (max_priority >= 0);
"#,
        ),
        // Admission refusals: how many assignments of a job workers refused (past their
        // caps), which cost nothing and do not count toward `max_attempts`, and the
        // last refusal's sentence for the job's owner. Which workers refused a job is
        // kept in memory only (`queue::model::State::refusals`).
        M::up(
            r#"
ALTER TABLE jobs ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0 CHECK (refusals >= 0);
ALTER TABLE jobs ADD COLUMN refusal TEXT;
"#,
        ),
        // Result checks (docs/trust.md). `validate`: whether the submitter allows the
        // result to be checked by replicas; `validation`: how it was accepted, once the
        // job ended. Workers registered before this level were trusted by the code that
        // served them, so they stay trusted (the operator can take it back with
        // `worker trust ID --off`); new ones start on probation. `reliability` keeps
        // each worker's and each owner's record ('worker:ID', 'owner:NAME'), so that a
        // new token of a cheating owner starts where the owner stands. `replicas` holds
        // every result that took part in a check, with its digests: the accepted output
        // is stored on the job, the others are compared by digest only.
        // `trust_version` grows at every operator change to trust, so a running
        // coordinator reloads the records.
        M::up(
            r#"
ALTER TABLE jobs ADD COLUMN validate INTEGER NOT NULL DEFAULT 1 CHECK (validate IN (0, 1));
ALTER TABLE jobs ADD COLUMN validation TEXT;
ALTER TABLE workers ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0 CHECK (trusted IN (0, 1));
UPDATE workers SET trusted = 1;
CREATE TABLE reliability (
    subject         TEXT PRIMARY KEY,
    validated       INTEGER NOT NULL DEFAULT 0 CHECK (validated >= 0),
    invalid         INTEGER NOT NULL DEFAULT 0 CHECK (invalid >= 0),
    errors          INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
    lost            INTEGER NOT NULL DEFAULT 0 CHECK (lost >= 0),
    streak          INTEGER NOT NULL DEFAULT 0 CHECK (streak >= 0),
    strikes         INTEGER NOT NULL DEFAULT 0 CHECK (strikes >= 0),
    quarantined     TEXT,
    quarantined_at  INTEGER
) STRICT;
CREATE TABLE replicas (
    job_id            INTEGER NOT NULL REFERENCES jobs(id),
    attempt           INTEGER NOT NULL,
    worker_id         INTEGER NOT NULL REFERENCES workers(id),
    owner             TEXT NOT NULL,
    status            TEXT NOT NULL,
    exit_code         INTEGER,
    stdout_sha256     TEXT NOT NULL,
    stderr_sha256     TEXT NOT NULL,
    stdout_truncated  INTEGER NOT NULL,
    stderr_truncated  INTEGER NOT NULL,
    verdict           TEXT NOT NULL
                        CHECK (verdict IN ('pending','valid','invalid','inconclusive')),
    reported_at       INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
) STRICT;
CREATE INDEX replicas_pending ON replicas(worker_id) WHERE verdict = 'pending';
CREATE TABLE grid_state (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT;
INSERT INTO grid_state (key, value) VALUES ('trust_version', 0);
"#,
        ),
        // Operating users (docs/operations.md#users-and-credits). The ledger gains the
        // kind `debit` (credits an operator takes back to the mint) and the `reason`
        // an operator gives for a grant or debit by hand. SQLite cannot change a CHECK,
        // so the table is rebuilt with its rows, indexes and append-only triggers
        // (nothing references it). `users.disabled` holds why the operator disabled
        // an account (NULL: enabled). `audit` keeps every operator change, who made it
        // and when. `users_version` grows at every disable and enable, so a running
        // coordinator cancels the queued jobs of a user disabled from the command line.
        M::up(
            r#"
CREATE TABLE ledger_v6 (
    id                  INTEGER PRIMARY KEY,
    at                  INTEGER NOT NULL,
    kind                TEXT NOT NULL
                          CHECK (kind IN ('grant','hold','reward','fee','refund','debit')),
    from_account        TEXT NOT NULL REFERENCES accounts(id),
    to_account          TEXT NOT NULL REFERENCES accounts(id),
    amount              INTEGER NOT NULL CHECK (amount > 0),
    job_id              INTEGER REFERENCES jobs(id),
    from_balance_after  INTEGER NOT NULL,
    to_balance_after    INTEGER NOT NULL,
    reason              TEXT
) STRICT;
INSERT INTO ledger_v6 (id, at, kind, from_account, to_account, amount, job_id,
                       from_balance_after, to_balance_after)
    SELECT id, at, kind, from_account, to_account, amount, job_id,
           from_balance_after, to_balance_after FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_v6 RENAME TO ledger;
CREATE INDEX ledger_from ON ledger(from_account, id);
CREATE INDEX ledger_to ON ledger(to_account, id);
CREATE INDEX ledger_job ON ledger(job_id);
CREATE TRIGGER ledger_is_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_is_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
ALTER TABLE users ADD COLUMN disabled TEXT;
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    detail   TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
INSERT INTO grid_state (key, value) VALUES ('users_version', 0);
"#,
        ),
        // The Judge0-compatible API (docs/judge0.md): each job it submits has a v4
        // UUID token, the Judge0 language id it was asked for, the expected output it
        // is compared with (kept here, never sent to a worker), and the request's
        // settings as JSON, echoed back by `fields`. Written in the job's transaction.
        // `matched` is the comparison's result, kept when retention blanks the output
        // so that the verdict reads the same afterwards.
        M::up(
            r#"
CREATE TABLE judge0_submissions (
    token            TEXT PRIMARY KEY,
    job_id           INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
    language_id      INTEGER NOT NULL,
    expected_output  TEXT,
    settings         TEXT NOT NULL,
    matched          INTEGER CHECK (matched IN (0, 1)),
    callback_url     TEXT
) STRICT;
"#,
        ),
        // Compiled languages (docs/jobs.md, "Compiled languages"): what the compiler
        // printed, apart from the program's output (NULL for interpreted languages),
        // and its digest on each replica, which result checks compare too.
        M::up(
            r#"
ALTER TABLE jobs ADD COLUMN compile_output TEXT;
ALTER TABLE replicas ADD COLUMN compile_output_sha256 TEXT;
"#,
        ),
        // Live output (docs/api.md, `GET /v1/jobs/{id}/output`): the pieces of a
        // running attempt's output as its worker sent them, until the job's status is
        // next written. Pieces of one stream are contiguous: `offset` is in bytes of
        // the stream's UTF-8 text.
        M::up(
            r#"
CREATE TABLE live_output (
    job_id  INTEGER NOT NULL REFERENCES jobs(id),
    stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    offset  INTEGER NOT NULL CHECK (offset >= 0),
    text    TEXT NOT NULL,
    PRIMARY KEY (job_id, stream, offset)
) STRICT;
"#,
        ),
        // GPU jobs (docs/jobs.md, "GPU jobs"): how many GPUs a job asks for, the
        // least memory of each, and the NVML indices of its worker's GPUs its latest
        // attempt was given ("0,2"; NULL for none or while queued), which a restarted
        // coordinator leases again with the job.
        M::up(
            r#"
ALTER TABLE jobs ADD COLUMN gpus INTEGER NOT NULL DEFAULT 0 CHECK (gpus >= 0);
ALTER TABLE jobs ADD COLUMN gpu_memory_mb INTEGER CHECK (gpu_memory_mb > 0);
ALTER TABLE jobs ADD COLUMN gpu_indices TEXT;
"#,
        ),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }

    /// Level 3: existing users may submit up to priority 0 and existing workers have
    /// no slot cap (they keep getting what they claim) until the operator sets one.
    #[test]
    fn operator_limits_start_safe_on_an_existing_store() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_version(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO users (name, token_hash, is_admin, created_at) VALUES ('a', x'01', 0, 0);
             INSERT INTO workers (name, owner, token_hash, created_at) VALUES ('w', 'a', x'02', 0);",
        )
        .unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let (max_priority, max_slots): (i64, Option<i64>) = conn
            .query_row(
                "SELECT u.max_priority, w.max_slots FROM users u, workers w",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((max_priority, max_slots), (0, None));
        for bad in [
            "UPDATE users SET max_priority = -1",
            "UPDATE workers SET max_slots = 0",
        ] {
            assert!(conn.execute(bad, []).is_err(), "{bad}");
        }
    }

    /// Level 6 rebuilds the ledger: its rows, indexes and append-only triggers
    /// survive, and the new kind `debit` and a `reason` can be written.
    #[test]
    fn the_ledger_rebuild_keeps_every_row_and_its_guards() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        super::migrations().to_version(&mut conn, 5).unwrap();
        conn.execute_batch(
            "INSERT INTO users (name, token_hash, created_at) VALUES ('a', x'01', 0);
             INSERT INTO accounts (id, balance) VALUES ('user:a', 5000);
             UPDATE accounts SET balance = -5000 WHERE id = 'mint';
             INSERT INTO ledger (at, kind, from_account, to_account, amount,
                                 from_balance_after, to_balance_after)
                 VALUES (7, 'grant', 'mint', 'user:a', 5000, -5000, 5000);",
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO ledger (at, kind, from_account, to_account, amount, from_balance_after, to_balance_after)
                 VALUES (8, 'debit', 'user:a', 'mint', 1, 0, 0)",
                ()
            )
            .is_err(),
            "level 5 has no debit"
        );
        super::migrations().to_latest(&mut conn).unwrap();
        let row: (i64, String, i64, i64) = conn
            .query_row(
                "SELECT at, kind, amount, to_balance_after FROM ledger WHERE id = 1",
                (),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (7, "grant".into(), 5000, 5000));
        conn.execute(
            "INSERT INTO ledger (at, kind, from_account, to_account, amount, from_balance_after, to_balance_after, reason)
             VALUES (8, 'debit', 'user:a', 'mint', 1000, 4000, -4000, 'chargeback')",
            (),
        )
        .unwrap();
        for bad in [
            "UPDATE ledger SET amount = 1",
            "DELETE FROM ledger",
            "INSERT INTO ledger (at, kind, from_account, to_account, amount, from_balance_after, to_balance_after) VALUES (9, 'gift', 'mint', 'user:a', 1, 0, 0)",
            "INSERT INTO ledger (at, kind, from_account, to_account, amount, from_balance_after, to_balance_after) VALUES (9, 'grant', 'mint', 'user:nobody', 1, 0, 0)",
        ] {
            assert!(conn.execute(bad, []).is_err(), "{bad}");
        }
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger'",
                (),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
    }
}
