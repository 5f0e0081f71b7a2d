//! StreamHouse client: [`Producer`], [`Consumer`] and [`Admin`] over gRPC
//! (tokio + tonic), and the `streamctl` CLI.
pub mod backoff;
pub mod error;
pub mod partitioner;
pub mod retry;
pub use error::{Error, Result};
