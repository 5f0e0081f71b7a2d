//! The connection to a group's coordinator: found through any bootstrap
//! address (`FindCoordinator`), found again when the coordinator answers
//! that it no longer is one or cannot be reached. Owns its own connection
//! pool, so heartbeats never queue behind fetches.

use std::future::Future;

use crate::net::AgentChannel;
use parking_lot::Mutex;
use streamhouse_proto as pb;

use crate::error::{Error, Result};
use crate::net::pool::{bounded, ConnectionPool, PoolConfig};

type GroupClient = pb::group_service_client::GroupServiceClient<AgentChannel>;

/// How a group consumer reaches its coordinator. Cheap to share (`Arc`).
pub(crate) struct CoordinatorLink {
    group_id: String,
    bootstrap: Vec<String>,
    pool: ConnectionPool,
    /// The coordinator's address, once found.
    address: Mutex<Option<String>>,
}

/// Whether an error means "ask who coordinates again".
fn lost_coordinator(e: &Error) -> bool {
    matches!(e, Error::Transport { .. })
        || matches!(e, Error::Status { code, .. } if *code == crate::Code::Unavailable)
}

impl CoordinatorLink {
    pub(crate) fn new(group_id: String, bootstrap: Vec<String>, pool: PoolConfig) -> Self {
        CoordinatorLink {
            group_id,
            bootstrap,
            pool: ConnectionPool::new(pool),
            address: Mutex::new(None),
        }
    }

    /// The coordinator's address, asked of each bootstrap address in turn
    /// until one answers (a dead agent among them is passed over).
    async fn find(&self) -> Result<String> {
        let timeout = self.pool.config().call_timeout;
        let req = pb::FindCoordinatorRequest {
            group_id: self.group_id.clone(),
        };
        let mut last = Error::Config("bootstrap needs at least one host:port".into());
        for a in &self.bootstrap {
            let lease = match self.pool.get(a).await {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let mut c = GroupClient::new(lease.channel());
            match bounded(timeout, "FindCoordinator", c.find_coordinator(req.clone())).await {
                Ok(r) => return Ok(r.into_inner().address),
                Err(s) => last = s.into(),
            }
        }
        Err(last)
    }

    /// The coordinator's client, asking who it is first if not known.
    async fn coordinator(&self) -> Result<GroupClient> {
        let known = self.address.lock().clone();
        let address = match known {
            Some(a) => a,
            None => {
                let a = self.find().await?;
                *self.address.lock() = Some(a.clone());
                a
            }
        };
        Ok(GroupClient::new(self.pool.get(&address).await?.channel()))
    }

    /// One request to the coordinator, bounded by the pool's call timeout;
    /// when the coordinator moved or cannot be reached it is found again
    /// and the request sent once more, after the pool's retry delay.
    ///
    /// # Cancellation
    /// A request already sent is not withdrawn.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(GroupClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.pool.config().call_timeout;
        let mut last = None;
        for attempt in 1..=2 {
            let r = match self.coordinator().await {
                Ok(c) => bounded(timeout, what, f(c))
                    .await
                    .map(|r| r.into_inner())
                    .map_err(Error::from),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if lost_coordinator(&e) => {
                    *self.address.lock() = None;
                    if attempt < 2 {
                        tokio::time::sleep(self.pool.retry().delay_after(attempt, &e)).await;
                    }
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    /// A request any agent answers, bounded by the call timeout: sent to
    /// the coordinator when known, then to each bootstrap address in turn
    /// until one answers.
    ///
    /// # Cancellation
    /// Read-only requests only: dropping the future has no effect.
    pub(crate) async fn ask<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(GroupClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.pool.config().call_timeout;
        let known = self.address.lock().clone();
        let mut last = Error::Config("bootstrap needs at least one host:port".into());
        for a in known.iter().chain(self.bootstrap.iter()) {
            let lease = match self.pool.get(a).await {
                Ok(l) => l,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match bounded(timeout, what, f(GroupClient::new(lease.channel()))).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) => last = s.into(),
            }
        }
        Err(last)
    }
}
