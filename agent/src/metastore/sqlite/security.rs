//! Users and API tokens in SQLite: reading them, and running a change's
//! [`Plan`] in one immediate transaction (a failed check rolls it back).

use rusqlite::types::Value;
use rusqlite::{params_from_iter, OptionalExtension, TransactionBehavior};

use crate::metastore::security::{
    AclRow, Arg, ChangeOutcome, Check, Plan, SecurityRows, TokenRow, UserRow,
};
use crate::metastore::sql::{for_sqlite, security as q};
use crate::metastore::MetaError;

use super::{db, SqliteStore};

fn values(args: &[Arg]) -> Vec<Value> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => Value::Text(s.clone()),
            Arg::Int(i) => Value::Integer(*i),
        })
        .collect()
}

impl SqliteStore {
    pub fn security_version(&self) -> Result<i64, MetaError> {
        self.conn
            .lock()
            .query_row(q::VERSION, [], |r| r.get(0))
            .map_err(db)
    }

    pub fn security(&self) -> Result<SecurityRows, MetaError> {
        let mut conn = self.conn.lock();
        // One read transaction: the version and the rows agree.
        let tx = conn.transaction().map_err(db)?;
        let version = tx.query_row(q::VERSION, [], |r| r.get(0)).map_err(db)?;
        let users = {
            let mut st = tx.prepare(q::USERS).map_err(db)?;
            let rows = st
                .query_map([], |r| {
                    Ok(UserRow {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                        tokens: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)?
        };
        let tokens = {
            let mut st = tx.prepare(q::TOKENS).map_err(db)?;
            let rows = st
                .query_map([], |r| {
                    Ok(TokenRow {
                        id: r.get(0)?,
                        user: r.get(1)?,
                        hash: r.get(2)?,
                        description: r.get(3)?,
                        created_ms: r.get(4)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)?
        };
        let acls = {
            let mut st = tx.prepare(q::ACLS).map_err(db)?;
            let rows = st
                .query_map([], |r| {
                    Ok(AclRow {
                        principal: r.get(0)?,
                        resource_type: r.get(1)?,
                        pattern_type: r.get(2)?,
                        resource_name: r.get(3)?,
                        operation: r.get(4)?,
                        permission: r.get(5)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)?
        };
        Ok(SecurityRows {
            version,
            users,
            tokens,
            acls,
        })
    }

    /// Runs `plan` in one transaction; the first failed check's outcome
    /// rolls it back.
    pub fn run_plan(&self, plan: &Plan) -> Result<ChangeOutcome, MetaError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        for step in plan {
            let sql = for_sqlite(step.sql);
            let args = params_from_iter(values(&step.args));
            let failed = match &step.check {
                Check::Run => {
                    tx.execute(&sql, args).map_err(db)?;
                    None
                }
                Check::Affects(o) => (tx.execute(&sql, args).map_err(db)? == 0).then_some(o),
                Check::Returns(o) => {
                    let row: Option<i64> = tx
                        .query_row(&sql, args, |r| r.get(0))
                        .optional()
                        .map_err(db)?;
                    row.is_none().then_some(o)
                }
                Check::Below(limit, o) => {
                    let n: i64 = tx.query_row(&sql, args, |r| r.get(0)).map_err(db)?;
                    (n >= *limit).then_some(o)
                }
            };
            if let Some(outcome) = failed {
                // Dropping the transaction rolls it back.
                return Ok(outcome.clone());
            }
        }
        tx.commit().map_err(db)?;
        Ok(ChangeOutcome::Done)
    }
}
