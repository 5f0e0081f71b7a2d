//! The agent process around its shards: starting and stopping
//! ([`lifecycle`]), a shard's executor thread and its restarts
//! ([`supervisor`]), the descriptors a shard holds ([`sockets`]),
//! descriptor budget ([`limits`]), the data dir's shard count
//! ([`layout`]), free port ranges ([`ports`]), task registries
//! ([`tasks`]), log output ([`logging`]) and time ([`clock`]). Knows no
//! RPC, no topic and no lease rule.

pub mod clock;
pub mod layout;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod ports;
pub mod sockets;
pub mod supervisor;
pub mod tasks;
