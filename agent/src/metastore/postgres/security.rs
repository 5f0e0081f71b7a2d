//! Users and API tokens in PostgreSQL: reading them in one snapshot, and
//! running a change's [`Plan`] in one transaction (a failed check rolls it
//! back; the version bump it starts with holds the counter's row lock, so
//! changes run one at a time).

use tokio_postgres::types::ToSql;
use tokio_postgres::IsolationLevel;

use crate::metastore::security::{
    AclRow, Arg, ChangeOutcome, Check, Plan, SecurityRows, TokenRow, UserRow,
};
use crate::metastore::sql::security as q;
use crate::metastore::MetaError;

use super::{db, PostgresStore};

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => s as &(dyn ToSql + Sync),
            Arg::Int(i) => i as &(dyn ToSql + Sync),
        })
        .collect()
}

impl PostgresStore {
    pub async fn security_version(&self) -> Result<i64, MetaError> {
        let c = self.client().await?;
        Ok(c.query_one(q::VERSION, &[]).await.map_err(db)?.get(0))
    }

    pub async fn security(&self) -> Result<SecurityRows, MetaError> {
        let mut c = self.client().await?;
        // One snapshot: the version and the rows agree.
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let version = tx.query_one(q::VERSION, &[]).await.map_err(db)?.get(0);
        let users = tx
            .query(q::USERS, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| UserRow {
                name: r.get(0),
                created_ms: r.get(1),
                tokens: u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX),
            })
            .collect();
        let tokens = tx
            .query(q::TOKENS, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| TokenRow {
                id: r.get(0),
                user: r.get(1),
                hash: r.get(2),
                description: r.get(3),
                created_ms: r.get(4),
            })
            .collect();
        let acls = tx
            .query(q::ACLS, &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| AclRow {
                principal: r.get(0),
                resource_type: r.get(1),
                pattern_type: r.get(2),
                resource_name: r.get(3),
                operation: r.get(4),
                permission: r.get(5),
            })
            .collect();
        tx.commit().await.map_err(db)?;
        Ok(SecurityRows {
            version,
            users,
            tokens,
            acls,
        })
    }

    /// Runs `plan` in one transaction; the first failed check's outcome
    /// rolls it back.
    pub async fn run_plan(&self, plan: Plan) -> Result<ChangeOutcome, MetaError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db)?;
        for step in &plan {
            let args = params(&step.args);
            let failed = match &step.check {
                Check::Run => {
                    tx.execute(step.sql, &args).await.map_err(db)?;
                    None
                }
                Check::Affects(o) => {
                    (tx.execute(step.sql, &args).await.map_err(db)? == 0).then_some(o)
                }
                Check::Returns(o) => tx
                    .query_opt(step.sql, &args)
                    .await
                    .map_err(db)?
                    .is_none()
                    .then_some(o),
                Check::Below(limit, o) => {
                    let n: i64 = tx.query_one(step.sql, &args).await.map_err(db)?.get(0);
                    (n >= *limit).then_some(o)
                }
            };
            if let Some(outcome) = failed {
                tx.rollback().await.map_err(db)?;
                return Ok(outcome.clone());
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(ChangeOutcome::Done)
    }
}
