//! How the agents of a cluster share partitions: which live agent should
//! lead each one ([`assignment`]), when an expired lease may be taken
//! over ([`takeover`]), where each lease epoch began writing
//! ([`leader_epochs`]), and partitions' high watermarks across the cluster
//! for group lag ([`watermarks`]). Rules and data; the control thread
//! acts on them.

pub mod assignment;
pub mod leader_epochs;
pub mod takeover;
pub mod watermarks;
