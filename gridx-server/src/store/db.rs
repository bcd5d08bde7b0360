//! The store boundary: one connection type over both engines, SQLite (embedded, the
//! default) and PostgreSQL (several coordinators on one database, issue 16). Every
//! query of the store is written once, in the SQL both engines accept:
//!
//! - parameters as `?1`, `?2`… (SQLite's numbered form); on PostgreSQL they are sent
//!   as `$1`, `$2`… ([`to_postgres`] rewrites them outside string literals);
//! - `INSERT … RETURNING id` instead of `last_insert_rowid()`, `ON CONFLICT … DO
//!   NOTHING` instead of `INSERT OR IGNORE`;
//! - `"user"` quoted (reserved in PostgreSQL, where a bare `user` is the session's
//!   role: [`to_postgres`] refuses such a query rather than run it);
//! - sums cast back to `BIGINT` (PostgreSQL sums `BIGINT` into `NUMERIC`).
//!
//! Values cross the boundary as [`Value`]s, converted to the type the database asks
//! for: flags are 0/1 integers on both engines, and a Rust `bool` is sent as one.
//! PostgreSQL's calls are synchronous (the `postgres` crate), like SQLite's: the
//! queue's own thread and the API's blocking pool make them, never an async task.

use super::{StoreError, StoreResult};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

/// One value read from or sent to the database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A Rust value the store may send.
pub trait ToValue {
    fn to_value(&self) -> StoreResult<Value>;
}

/// A Rust value the store may read.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> StoreResult<Value> {
                i64::try_from(*self).map(Value::Int).map_err(|_| {
                    StoreError::Corrupt(format!("{} does not fit a 64-bit integer", self))
                })
            }
        }
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                match value {
                    Value::Int(n) => <$t>::try_from(*n)
                        .map_err(|_| format!("{n} is out of range for {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {}", other.kind())),
                }
            }
        }
    )*};
}
int_values!(i64, i32, i16, u8, u16, u32, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Int(i64::from(*self)))
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(*n != 0),
            other => Err(format!("expected a flag, found {}", other.kind())),
        }
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Real(*self))
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Int(n) => Ok(*n as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}
impl ToValue for str {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Text(self.to_owned()))
    }
}
impl ToValue for String {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Text(self.clone()))
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            Value::Blob(b) => String::from_utf8(b.clone()).map_err(|_| "text is not UTF-8".into()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.to_vec()))
    }
}
impl<const N: usize> ToValue for [u8; N] {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.to_vec()))
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.clone()))
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }
}
impl ToValue for Value {
    fn to_value(&self) -> StoreResult<Value> {
        Ok(self.clone())
    }
}
impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> StoreResult<Value> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> StoreResult<Value> {
        (**self).to_value()
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }

    /// A text's or blob's length in bytes, an integer as itself (an output column
    /// that is read either as the text or as its length).
    pub fn byte_length(&self) -> u64 {
        match self {
            Value::Int(n) => (*n).max(0) as u64,
            Value::Text(s) => s.len() as u64,
            Value::Blob(b) => b.len() as u64,
            Value::Null | Value::Real(_) => 0,
        }
    }
}

/// The parameters of a query: `params![a, b]`, an array of one type, or `()`.
pub trait Params {
    fn values(&self) -> StoreResult<Vec<Value>>;
}
impl Params for () {
    fn values(&self) -> StoreResult<Vec<Value>> {
        Ok(Vec::new())
    }
}
impl Params for &[&dyn ToValue] {
    fn values(&self) -> StoreResult<Vec<Value>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}
impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> StoreResult<Vec<Value>> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// Parameters of mixed types, as `rusqlite::params!` takes them.
#[macro_export]
macro_rules! params {
    () => { () };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue]
    };
}
pub use crate::params;

/// One row of a result.
#[derive(Debug)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `idx`, as `T`.
    pub fn get<T: FromValue>(&self, idx: usize) -> StoreResult<T> {
        let value = self
            .values
            .get(idx)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {idx}")))?;
        T::from_value(value).map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
    }

    /// Column `idx` as it came.
    pub fn value(&self, idx: usize) -> StoreResult<&Value> {
        self.values
            .get(idx)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {idx}")))
    }
}

/// `query_row(..).optional()`: no row is `None`, any other error stays one.
pub trait OptionalExtension<T> {
    fn optional(self) -> StoreResult<Option<T>>;
}
impl<T> OptionalExtension<T> for StoreResult<T> {
    fn optional(self) -> StoreResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct PgConn {
    /// Taken out only by `Drop`.
    client: RefCell<Option<postgres::Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// The leadership epoch every transaction of this connection is fenced by
    /// (`crate::leadership::fence`); `None` for admin commands and readers.
    epoch: Option<i64>,
    /// A statement failed in the open transaction. PostgreSQL then aborts the whole
    /// transaction, and its `COMMIT` rolls back without an error: [`Tx::commit`]
    /// must report that instead of letting a lost batch pass for a committed one.
    failed_in_tx: std::cell::Cell<bool>,
}

impl Drop for PgConn {
    /// Closing the synchronous client blocks on its own runtime, which panics on a
    /// thread that drives async tasks (where the API's state, holding the readers,
    /// is dropped): such a thread hands the client to a thread of its own to close.
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("gridx-pg-close".into())
                .spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

/// How many prepared statements a PostgreSQL connection keeps: more than the store
/// has queries, so the bound only matters for a query built per call.
const PG_STATEMENT_CACHE: usize = 256;

/// A connection to the store, on either engine.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

impl From<rusqlite::Connection> for Db {
    fn from(conn: rusqlite::Connection) -> Self {
        Db::Sqlite(conn)
    }
}

impl Db {
    /// A PostgreSQL connection; `epoch` fences its transactions (the leader's).
    pub fn postgres(client: postgres::Client, epoch: Option<i64>) -> Self {
        Db::Postgres(Box::new(PgConn {
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            epoch,
            failed_in_tx: std::cell::Cell::new(false),
        }))
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Whether this connection can no longer be used (a PostgreSQL session that
    /// ended: the server restarted, the network dropped it). A pool drops it.
    pub fn is_broken(&self) -> bool {
        match self {
            Db::Sqlite(_) => false,
            Db::Postgres(pg) => pg.client().map_or(true, |c| c.is_closed()),
        }
    }

    /// The SQLite connection, for what only SQLite has (backup, `user_version`).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    /// A statement (kept prepared by the connection).
    pub fn prepare_cached<'a>(&'a self, sql: &'a str) -> StoreResult<Stmt<'a>> {
        Ok(Stmt { db: self, sql })
    }

    /// The same as [`Db::prepare_cached`]: every statement is kept prepared.
    pub fn prepare<'a>(&'a self, sql: &'a str) -> StoreResult<Stmt<'a>> {
        self.prepare_cached(sql)
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> StoreResult<usize> {
        let values = params.values()?;
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?)
            }
            Db::Postgres(pg) => {
                let changed = pg.noted((|| {
                    let stmt = pg.statement(sql)?;
                    let refs = pg_params(&values);
                    Ok(pg.client()?.execute(&stmt, &refs)?)
                })())?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs a query and maps every row.
    pub fn query_all<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let values = params.values()?;
        let mut out = Vec::new();
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?;
                while let Some(r) = rows.next()? {
                    let mut values = Vec::with_capacity(columns);
                    for i in 0..columns {
                        values.push(from_sqlite(r.get_ref(i)?));
                    }
                    out.push(f(&Row { values })?);
                }
            }
            Db::Postgres(pg) => {
                let rows = pg.noted((|| {
                    let stmt = pg.statement(sql)?;
                    let refs = pg_params(&values);
                    Ok(pg.client()?.query(&stmt, &refs)?)
                })())?;
                for r in &rows {
                    out.push(f(&from_postgres(r)?)?);
                }
            }
        }
        Ok(out)
    }

    /// The first row of a query, mapped; [`StoreError::NoRow`] when there is none
    /// (`.optional()` makes that `None`).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut f = Some(f);
        let mut first = None;
        // Both engines stop at the first row only when told; the store's single-row
        // queries select by key, so reading all rows costs nothing here.
        self.query_all(sql, params, |r| {
            if let Some(f) = f.take() {
                first = Some(f(r)?);
            }
            Ok(())
        })?;
        first.ok_or(StoreError::NoRow)
    }

    /// Runs statements without parameters (schema, pragmas).
    pub fn execute_batch(&self, sql: &str) -> StoreResult<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(pg) => pg.noted((|| Ok(pg.client()?.batch_execute(sql)?))()),
        }
    }

    /// Begins a transaction that writes: SQLite takes the write lock at once (see
    /// `store::open_writer`); PostgreSQL checks the leader's epoch first, so a
    /// deposed leader's transaction fails before it writes anything. Dropped without
    /// [`Tx::commit`], it rolls back.
    pub fn transaction(&self) -> StoreResult<Tx<'_>> {
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Db::Postgres(pg) => {
                pg.client()?.batch_execute("BEGIN")?;
                pg.failed_in_tx.set(false);
                let tx = Tx {
                    db: self,
                    open: true,
                };
                if let Some(epoch) = pg.epoch {
                    let current: Option<i64> = self
                        .query_row(crate::leadership::FENCE_SQL, (), |r| r.get(0))
                        .optional()?;
                    if current != Some(epoch) {
                        return Err(StoreError::Deposed {
                            ours: epoch,
                            current,
                        });
                    }
                }
                return Ok(tx);
            }
        }
        Ok(Tx {
            db: self,
            open: true,
        })
    }
}

impl Db {
    /// Begins a transaction that only reads, seeing one moment of the store (the
    /// ledger's verification sums several tables and must not see a commit land
    /// between them). Works on a read-only connection; takes no lock that writers
    /// wait for.
    pub fn snapshot(&self) -> StoreResult<Tx<'_>> {
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Db::Postgres(pg) => pg
                .client()?
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?,
        }
        Ok(Tx {
            db: self,
            open: true,
        })
    }
}

/// A prepared statement of a [`Db`] (rusqlite's shape, so the store reads the same).
pub struct Stmt<'a> {
    db: &'a Db,
    sql: &'a str,
}

impl Stmt<'_> {
    pub fn execute(&mut self, params: impl Params) -> StoreResult<usize> {
        self.db.execute(self.sql, params)
    }

    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.db.query_row(self.sql, params, f)
    }

    /// Every row, mapped, as an iterator of results (rusqlite's `query_map` shape).
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<std::vec::IntoIter<StoreResult<T>>> {
        Ok(self
            .db
            .query_all(self.sql, params, |r| Ok(f(r)))?
            .into_iter())
    }
}

/// An open transaction; derefs to its connection.
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> StoreResult<()> {
        if let Db::Postgres(pg) = self.db
            && pg.failed_in_tx.get()
        {
            // Dropping `self` rolls back.
            return Err(StoreError::Aborted);
        }
        self.open = false;
        self.db.execute_batch("COMMIT")
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do on failure: the connection is broken, or the transaction
            // already ended, and either way nothing of it was committed.
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

impl PgConn {
    /// Passes `result` on, remembering a failure for [`Tx::commit`].
    fn noted<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if result.is_err() {
            self.failed_in_tx.set(true);
        }
        result
    }

    fn client(&self) -> StoreResult<std::cell::RefMut<'_, postgres::Client>> {
        std::cell::RefMut::filter_map(self.client.borrow_mut(), Option::as_mut)
            .map_err(|_| StoreError::Unavailable)
    }

    fn statement(&self, sql: &str) -> StoreResult<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = to_postgres(sql).map_err(StoreError::Corrupt)?;
        let stmt = self.client()?.prepare(&translated)?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= PG_STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// The store's SQL as PostgreSQL reads it: `?N` becomes `$N` (a bare `?` the next
/// number) outside string literals and quoted names. A bare `user` is refused: in
/// PostgreSQL it is the session's role, not the column, and a query comparing with
/// it would run and be wrong.
pub fn to_postgres(sql: &str) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next_anonymous = 1;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| -> Result<(), String> {
        if word.eq_ignore_ascii_case("user") {
            return Err(format!(
                "query names the column user unquoted (write \"user\"): {sql}"
            ));
        }
        out.push_str(word);
        word.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out)?;
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    digits = next_anonymous.to_string();
                    next_anonymous += 1;
                }
                out.push('$');
                out.push_str(&digits);
            }
            c => out.push(c),
        }
    }
    flush(&mut word, &mut out)?;
    Ok(out)
}

struct SqliteValue<'a>(&'a Value);

impl rusqlite::ToSql for SqliteValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn pg_params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn from_postgres(row: &postgres::Row) -> StoreResult<Row> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Int(b.into()))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)?
                .map(|f| Value::Real(f.into()))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(StoreError::Corrupt(format!(
                "column {} is {ty}: cast it to BIGINT, TEXT or BYTEA in the query",
                column.name()
            )));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row { values })
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        let text_like = [
            Type::TEXT,
            Type::VARCHAR,
            Type::NAME,
            Type::BPCHAR,
            Type::UNKNOWN,
        ];
        match self {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Int(n) if *ty == Type::INT8 => n.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::BOOL => (*n != 0).to_sql(ty, out),
            Value::Int(n) if *ty == Type::FLOAT8 => (*n as f64).to_sql(ty, out),
            Value::Int(n) if text_like.contains(ty) => n.to_string().to_sql(ty, out),
            Value::Real(f) if *ty == Type::FLOAT8 => f.to_sql(ty, out),
            Value::Text(s) if text_like.contains(ty) => s.as_str().to_sql(ty, out),
            Value::Text(s) if *ty == Type::BYTEA => s.as_bytes().to_sql(ty, out),
            Value::Blob(b) if *ty == Type::BYTEA => b.as_slice().to_sql(ty, out),
            other => Err(format!("cannot send {} as {ty}", other.kind()).into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_literals() {
        assert_eq!(
            to_postgres("SELECT ?1, '?2', \"a?\" FROM t WHERE a = ?12 AND b = ?").unwrap(),
            "SELECT $1, '?2', \"a?\" FROM t WHERE a = $12 AND b = $1"
        );
    }

    #[test]
    fn a_bare_user_is_refused_and_a_quoted_one_kept() {
        assert!(to_postgres("SELECT name FROM jobs WHERE user = ?1").is_err());
        assert_eq!(
            to_postgres("SELECT \"user\", users.name FROM jobs").unwrap(),
            "SELECT \"user\", users.name FROM jobs"
        );
        assert!(to_postgres("SELECT username, user_id FROM t").is_ok());
    }

    #[test]
    fn integers_are_checked_both_ways() {
        assert!(u32::from_value(&Value::Int(-1)).is_err());
        assert_eq!(u64::MAX.to_value().ok(), None);
        assert_eq!(bool::from_value(&Value::Int(1)), Ok(true));
        assert_eq!(Option::<i64>::from_value(&Value::Null), Ok(None));
    }

    #[test]
    fn sqlite_round_trip_and_transactions() {
        let db = Db::from(rusqlite::Connection::open_in_memory().unwrap());
        db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB, f INTEGER)")
            .unwrap();
        let id: i64 = db
            .query_row(
                "INSERT INTO t (a, b, f) VALUES (?1, ?2, ?3) RETURNING id",
                params!["x", vec![1u8, 2], true],
                |r| r.get(0),
            )
            .unwrap();
        {
            let tx = db.transaction().unwrap();
            tx.execute("DELETE FROM t", ()).unwrap();
        }
        let row: (String, Vec<u8>, bool) = db
            .query_row("SELECT a, b, f FROM t WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, ("x".to_owned(), vec![1, 2], true));
        assert!(matches!(
            db.query_row("SELECT a FROM t WHERE id = 99", (), |r| r.get::<String>(0)),
            Err(StoreError::NoRow)
        ));
    }
}
