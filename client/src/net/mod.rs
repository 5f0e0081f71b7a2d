//! The network side shared by the producer, the consumer and the admin
//! client: agent addresses checked ([`address`]), connections per agent
//! shard ([`pool`]), a circuit breaker per
//! address ([`breaker`]), TLS settings ([`tls`]), the credentials every
//! call carries ([`channel`]) and the routes of
//! topics' partitions ([`metadata`]). Knows nothing of records, batches or offsets.

pub mod address;
pub mod breaker;
pub mod channel;
pub mod metadata;
pub mod pool;
pub mod tls;

pub use channel::{AgentChannel, Token};
pub use pool::PoolConfig;
pub use tls::TlsConfig;
