//! The connection to a group's coordinator: found through any bootstrap
//! address (`FindCoordinator`), found again when the coordinator answers
//! that it no longer is one or cannot be reached. Owns its own connection
//! pool, so heartbeats never queue behind fetches.

use std::future::Future;

use parking_lot::Mutex;
use streamhouse_proto as pb;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::net::pool::{bounded, ConnectionPool, PoolConfig};

type GroupClient = pb::group_service_client::GroupServiceClient<Channel>;

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
        || matches!(e, Error::Status { code, .. } if *code == tonic::Code::Unavailable)
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

    /// A client on the first bootstrap address that can be reached.
    async fn any_agent(&self) -> Result<GroupClient> {
        let mut last = Error::Config("bootstrap needs at least one host:port".into());
        for a in &self.bootstrap {
            match self.pool.get(a).await {
                Ok(lease) => return Ok(GroupClient::new(lease.channel())),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A client for requests any agent answers.
    pub(crate) async fn anyone(&self) -> Result<GroupClient> {
        let known = self.address.lock().clone();
        if let Some(a) = known {
            if let Ok(lease) = self.pool.get(&a).await {
                return Ok(GroupClient::new(lease.channel()));
            }
        }
        self.any_agent().await
    }

    /// The coordinator's client, asking who it is first if not known.
    async fn coordinator(&self) -> Result<GroupClient> {
        let known = self.address.lock().clone();
        let address = match known {
            Some(a) => a,
            None => {
                let mut c = self.any_agent().await?;
                let timeout = self.pool.config().call_timeout;
                let r = bounded(
                    timeout,
                    "FindCoordinator",
                    c.find_coordinator(pb::FindCoordinatorRequest {
                        group_id: self.group_id.clone(),
                    }),
                )
                .await?
                .into_inner();
                *self.address.lock() = Some(r.address.clone());
                r.address
            }
        };
        Ok(GroupClient::new(self.pool.get(&address).await?.channel()))
    }

    /// One request to the coordinator, bounded by the pool's call timeout;
    /// when the coordinator moved or cannot be reached it is found again
    /// and the request sent once more.
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
        for _ in 0..2 {
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
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    /// A request any agent answers, bounded by the call timeout.
    ///
    /// # Cancellation
    /// Read-only requests only: dropping the future has no effect.
    pub(crate) async fn ask<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(GroupClient) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let timeout = self.pool.config().call_timeout;
        let c = self.anyone().await?;
        Ok(bounded(timeout, what, f(c)).await?.into_inner())
    }
}
