//! The SQL both metadata-store backends run, kept once, by area, written
//! with PostgreSQL's `$N` parameters; [`for_sqlite`] rewrites them for
//! SQLite. Statements whose dialects differ (row locks, conflict clauses
//! on tables only one backend needs, `INDEXED BY`) stay in their backend.
//! Statements only; no connection, no transaction.

pub(crate) mod chunks;
pub(crate) mod groups;
pub(crate) mod leases;
pub(crate) mod retention;
pub(crate) mod security;
pub(crate) mod topics;

use std::borrow::Cow;

/// `sql` with every `$N` parameter written `?N`. SQLite would read `$1`
/// as a parameter *named* `$1`, numbered by where it first appears, so a
/// statement that uses `$2` before `$1` would bind the wrong values;
/// `?N` binds the N-th value wherever it appears. Statements without a
/// parameter are returned as they are.
pub(crate) fn for_sqlite(sql: &'static str) -> Cow<'static, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::for_sqlite;

    #[test]
    fn parameters_are_numbered_for_sqlite() {
        assert_eq!(
            for_sqlite("UPDATE t SET a = $2 WHERE k = $1 AND b = $10"),
            "UPDATE t SET a = ?2 WHERE k = ?1 AND b = ?10"
        );
        assert!(matches!(
            for_sqlite("SELECT COUNT(*) FROM t"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// A statement using its parameters out of order binds each where its
    /// number says, and does not when run verbatim (what the helper is for).
    #[test]
    fn out_of_order_parameters_bind_by_number_in_sqlite() -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE t (k TEXT, v TEXT); INSERT INTO t VALUES ('key', 'old')")?;
        let sql = "UPDATE t SET v = $2 WHERE k = $1";
        let verbatim = conn.execute(sql, ["key", "new"])?;
        assert_eq!(verbatim, 0, "verbatim, $2 binds the first value");
        let rewritten = conn.execute(&for_sqlite(sql), ["key", "new"])?;
        assert_eq!(rewritten, 1);
        let v: String = conn.query_row("SELECT v FROM t", [], |r| r.get(0))?;
        assert_eq!(v, "new");
        Ok(())
    }

    /// Every shared statement prepares in SQLite once rewritten (the
    /// schema is the real one, migrated).
    #[test]
    fn every_shared_statement_prepares_in_sqlite() {
        let dir = std::env::temp_dir().join(format!("sh-sql-{}", std::process::id()));
        let path = dir.join("meta.db");
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::metastore::SqliteStore::open(&path.display().to_string());
        assert!(store.is_ok(), "the schema migrates");
        let conn = rusqlite::Connection::open(&path).expect("the store's file opens");
        for sql in all() {
            if let Err(e) = conn.prepare(&for_sqlite(sql)) {
                panic!("{sql}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every statement of this module, for tests that prepare them all.
    fn all() -> Vec<&'static str> {
        use super::{chunks::*, groups::*, leases::*, retention::*, topics::*};
        vec![
            INSERT_RANGE,
            UPSERT_PRODUCER,
            EXPIRE_PRODUCERS,
            CAP_PRODUCERS,
            PRODUCER_STATE,
            CHUNK_EXISTS,
            RANGE_AT,
            TIME_RANGES,
            LOAD_GROUP,
            GROUP_VERSION,
            CREATE_GROUP,
            SAVE_GROUP,
            DELETE_GROUP,
            DELETE_GROUP_OFFSETS,
            TOUCH_GROUP,
            COUNT_GROUPS,
            SET_LEASE,
            RELEASE_LEASE,
            TOPIC_LEASES,
            LEASE,
            EPOCH_STARTS,
            LEASE_BEATS,
            RECORD_EPOCH_START,
            CREATE_MIGRATIONS,
            MIGRATION_APPLIED,
            RECORD_MIGRATION,
            SCHEMA_VERSION,
            TOPICS,
            NEXT_TOPIC_ID,
            UPDATE_TOPIC,
            DELETE_TOPIC_LEASES,
            DELETE_TOPIC_EPOCHS,
            DELETE_TOPIC_PRODUCERS,
            DELETE_TOPIC_RANGES,
            DELETE_TOPIC_OFFSETS,
            NEXT_PRODUCER_ID,
            SET_PRODUCER_EPOCH,
            AGENTS,
            HEARTBEAT,
            LOG_START,
            RANGES_END,
            GONE_END,
            DELETE_GONE,
            SET_LOG_START,
            FIRST_UNEXPIRED,
            FIRST_WITHIN_BYTES,
            DEAD_CHUNKS,
            FORGET_CHUNK,
            STORED,
            DELETE_TOPIC_STARTS,
        ]
    }
}
