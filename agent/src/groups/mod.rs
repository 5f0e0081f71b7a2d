//! Consumer groups: members sharing a topic's partitions, coordinated by
//! one agent per group, with committed offsets. `assignor` computes who
//! should own what, `state` the rules of joining, leaving, generations and
//! the cooperative hand-over, `settings` the limits, `coordinator` the
//! requests against the metadata store (which holds every group's state,
//! so a coordinator change loses nothing), `expiry` the deletion of groups
//! left without members past their retention. Used by the control thread;
//! imports nothing of `control/` or `shard/`.

pub mod assignor;
pub mod coordinator;
pub mod expiry;
pub mod live;
pub mod offsets;
pub mod settings;
pub mod state;

#[cfg(test)]
mod tests;
