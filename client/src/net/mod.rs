//! The network side shared by the producer, the consumer and the admin
//! client: agent addresses checked ([`address`]), connections per agent
//! shard ([`pool`]), a circuit breaker per
//! address ([`breaker`]) and the routes of topics' partitions
//! ([`metadata`]). Knows nothing of records, batches or offsets.

pub mod address;
pub mod breaker;
pub mod metadata;
pub mod pool;

pub use pool::PoolConfig;
