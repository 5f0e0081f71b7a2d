//! Connection pool: a few HTTP/2 connections per agent shard address, each
//! carrying up to `max_in_flight` concurrent requests. Owns connecting,
//! choosing the least-loaded connection, idle expiry and the health check
//! before reusing an idle connection. Knows nothing of records or batches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamhouse_proto::health::{health_client::HealthClient, HealthCheckRequest};
use tokio::time::Instant;
use tonic::transport::Endpoint;

use super::channel::AgentChannel;

use crate::backoff::{thread_rng, BackoffConfig, RetryPolicy};
use crate::error::{Error, Result};
use crate::net::breaker::{BreakerConfig, Breakers};

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Connections kept per agent shard address; default 5 (seed).
    pub max_connections_per_agent: usize,
    /// Concurrent requests per connection before another connection is
    /// opened; default 32.
    pub max_in_flight: usize,
    /// Idle connections are closed after this long; default 60 s (seed).
    pub idle_timeout: Duration,
    /// A connection idle for this long is health-checked (gRPC health
    /// `Check`) before it is reused; default 5 s. HTTP/2 keep-alive PINGs
    /// (every 20 s, 10 s timeout) also close dead connections in between.
    pub health_check_after: Duration,
    /// TCP connect timeout, and the deadline of the health check; default 5 s.
    pub connect_timeout: Duration,
    /// Deadline of one metadata, producer-id or admin call, enforced by the
    /// client (a paused or cut-off agent answers nothing); default 10 s.
    pub call_timeout: Duration,
    /// Circuit breaker per address: a dead agent costs one timeout, not one
    /// per request.
    pub breaker: BreakerConfig,
    /// Delays between the retries of the clients sharing the pool other
    /// than the producer's batches (which have `ProducerBuilder::backoff`):
    /// consumer fetches, ListOffsets rounds, calls to a group coordinator
    /// that moved; default 50 ms doubling to at most 1 s, ±25%.
    pub retry: BackoffConfig,
    /// TLS to every agent (`https`); plaintext (`http`) when `None`, the
    /// default. The agents' ports must match: a TLS port refuses
    /// plaintext clients and the other way round.
    pub tls: Option<super::tls::TlsConfig>,
    /// API token sent with every call (`authorization: Bearer`), for
    /// agents started with `--auth required`; default `None`. With mutual
    /// TLS (`tls` with a client identity) none is needed.
    pub token: Option<super::channel::Token>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections_per_agent: 5,
            max_in_flight: 32,
            idle_timeout: Duration::from_secs(60),
            health_check_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            breaker: BreakerConfig::default(),
            retry: BackoffConfig {
                base: Duration::from_millis(50),
                max: Duration::from_secs(1),
                jitter: 0.25,
            },
            tls: None,
            token: None,
        }
    }
}

/// One pooled connection.
#[derive(Debug)]
pub struct PooledConn {
    /// Unique within the pool.
    pub id: u64,
    /// The HTTP/2 connection, adding the pool's token to every call.
    pub channel: AgentChannel,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
}

/// A connection checked out for one request; returned on drop.
#[derive(Debug)]
pub struct ConnLease {
    /// host:port the connection goes to.
    pub address: String,
    conn: Arc<PooledConn>,
}

impl ConnLease {
    /// The connection (cheap to clone).
    pub fn channel(&self) -> AgentChannel {
        self.conn.channel.clone()
    }
    /// The connection's id (to invalidate it after a failure).
    pub fn id(&self) -> u64 {
        self.conn.id
    }
}

impl Drop for ConnLease {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        *self.conn.last_used.lock() = Instant::now();
    }
}

/// The connections of one address, and how many are being opened.
#[derive(Debug, Default)]
struct Slot {
    conns: Vec<Arc<PooledConn>>,
    connecting: usize,
}

/// One connection being opened to an address: counted in its slot's
/// `connecting` from creation to drop.
struct Connecting<'a> {
    pool: &'a ConnectionPool,
    address: &'a str,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.pool.conns.lock().get_mut(self.address) {
            slot.connecting -= 1;
        }
    }
}

/// Connections per address.
#[derive(Debug)]
pub struct ConnectionPool {
    config: PoolConfig,
    conns: Mutex<HashMap<String, Slot>>,
    next_id: AtomicU64,
    /// Connections opened over the pool's life (for tests and metrics).
    pub opened: AtomicU64,
    /// Circuit breakers by address.
    pub breakers: Breakers,
    retry: RetryPolicy,
}

impl ConnectionPool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        ConnectionPool {
            breakers: Breakers::new(config.breaker),
            retry: RetryPolicy::new(config.retry, thread_rng()),
            config,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            opened: AtomicU64::new(0),
        }
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The retry policy of the clients sharing the pool (`PoolConfig::retry`).
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Whether a request to `address` can start now without exceeding
    /// `max_in_flight` on every allowed connection.
    pub fn has_capacity(&self, address: &str) -> bool {
        let conns = self.conns.lock();
        match conns.get(address) {
            None => true,
            Some(slot) => {
                slot.conns.len() + slot.connecting < self.config.max_connections_per_agent
                    || slot
                        .conns
                        .iter()
                        .any(|c| c.in_flight.load(Ordering::Acquire) < self.config.max_in_flight)
            }
        }
    }

    /// Open connections to `address`.
    pub fn connection_count(&self, address: &str) -> usize {
        self.conns.lock().get(address).map_or(0, |s| s.conns.len())
    }

    /// Checks out a connection to `address`: the least-loaded one, a new one
    /// when all are busy and the limit allows, after a health check when it
    /// was idle.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection cannot be made within the
    /// pool's `connect_timeout`, the address's circuit breaker is open, or
    /// `address` is empty (the partition has no leader right now).
    ///
    /// # Cancellation
    /// Safe to drop at any point: a connection being opened for it is
    /// abandoned and its slot given back; a connection it checked out is
    /// returned to the pool.
    pub async fn get(&self, address: &str) -> Result<ConnLease> {
        if address.is_empty() {
            return Err(Error::Transport {
                address: String::new(),
                message: "the partition has no leader right now (its lease is moving)".into(),
            });
        }
        if !self.breakers.allow(address, Instant::now()) {
            return Err(Error::Transport {
                address: address.to_owned(),
                message: "circuit open after repeated failures; retrying after its cool-down"
                    .into(),
            });
        }
        enum Pick {
            Use(Arc<PooledConn>, bool),
            Open,
            Wait,
        }
        loop {
            let pick = {
                let mut all = self.conns.lock();
                let slot = all.entry(address.to_owned()).or_default();
                let now = Instant::now();
                let idle = self.config.idle_timeout;
                slot.conns.retain(|c| {
                    c.in_flight.load(Ordering::Acquire) > 0
                        || now.duration_since(*c.last_used.lock()) < idle
                });
                let room =
                    slot.conns.len() + slot.connecting < self.config.max_connections_per_agent;
                let best = slot
                    .conns
                    .iter()
                    .min_by_key(|c| c.in_flight.load(Ordering::Acquire))
                    .cloned();
                match best {
                    Some(c)
                        if c.in_flight.load(Ordering::Acquire) < self.config.max_in_flight
                            || !room =>
                    {
                        let was_idle = c.in_flight.fetch_add(1, Ordering::AcqRel) == 0
                            && now.duration_since(*c.last_used.lock())
                                >= self.config.health_check_after;
                        Pick::Use(c, was_idle)
                    }
                    _ if room => {
                        slot.connecting += 1;
                        Pick::Open
                    }
                    _ => Pick::Wait,
                }
            };
            match pick {
                Pick::Use(conn, check) => {
                    let lease = ConnLease {
                        address: address.to_owned(),
                        conn,
                    };
                    if check && !self.healthy(&lease).await {
                        self.invalidate(address, lease.id());
                        continue;
                    }
                    return Ok(lease);
                }
                Pick::Open => {
                    // Gives the "connecting" slot back however this ends,
                    // also when the caller drops this future mid-connect.
                    let connecting = Connecting {
                        pool: self,
                        address,
                    };
                    let opened = self.connect(address).await;
                    drop(connecting);
                    let mut all = self.conns.lock();
                    let slot = all.entry(address.to_owned()).or_default();
                    let conn = match opened {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            self.breakers.failure(address, Instant::now());
                            return Err(e);
                        }
                    };
                    conn.in_flight.fetch_add(1, Ordering::AcqRel);
                    slot.conns.push(conn.clone());
                    return Ok(ConnLease {
                        address: address.to_owned(),
                        conn,
                    });
                }
                // Every allowed connection is being opened: wait for one.
                Pick::Wait => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    async fn healthy(&self, lease: &ConnLease) -> bool {
        let mut h = HealthClient::new(lease.channel());
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        req.set_timeout(self.config.connect_timeout);
        let check = bounded(self.config.connect_timeout, "health check", h.check(req)).await;
        matches!(check, Ok(r) if r.get_ref().status == 1)
    }

    async fn connect(&self, address: &str) -> Result<PooledConn> {
        let transport = |message: String| Error::Transport {
            address: address.to_owned(),
            message,
        };
        super::address::check(address).map_err(transport)?;
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| transport(format!("invalid address: {e}")))?;
        if let Some(tls) = &self.config.tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .map_err(|e| transport(format!("TLS settings: {e}")))?;
        }
        let endpoint = endpoint
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(32 << 20);
        let authorization =
            match &self.config.token {
                Some(t) => Some(t.header().ok_or_else(|| {
                    transport("the token holds bytes an HTTP header may not".into())
                })?),
                None => None,
            };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| transport(super::address::describe(&e)))?;
        let channel = AgentChannel::new(channel, authorization);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(PooledConn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            channel,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// Drops a connection that failed, so the next request opens a fresh one.
    pub fn invalidate(&self, address: &str, id: u64) {
        self.breakers.failure(address, Instant::now());
        if let Some(slot) = self.conns.lock().get_mut(address) {
            slot.conns.retain(|c| c.id != id);
        }
    }

    /// Closes every connection.
    pub fn close_all(&self) {
        for slot in self.conns.lock().values_mut() {
            slot.conns.clear();
        }
    }
}

/// Runs one call under a deadline the client enforces itself: `grpc-timeout`
/// alone relies on the agent, and a paused or cut-off agent answers nothing
/// (the connection's keep-alive would notice only after ~30 s). A call that
/// runs out is dropped, which resets its HTTP/2 stream, and answered
/// `DEADLINE_EXCEEDED` naming `what`.
///
/// # Errors
/// A `DEADLINE_EXCEEDED` status when `call` outlives `timeout`; `call`'s
/// own status otherwise.
///
/// # Cancellation
/// Dropping the future drops the call, as running out does.
pub async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, tonic::Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "{what}: no answer within {timeout:?}"
        ))),
    }
}
