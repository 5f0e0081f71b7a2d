//! Statements both backends run for migrations, topics (rows, ids and
//! what deleting one removes), producer ids and epochs, and agents.
//! Written once with `$N` parameters (see [`super::for_sqlite`]).

/// Every registered agent, by id.
pub(crate) const AGENTS: &str =
    "SELECT agent_id, addresses, heartbeat_ms, failed_shards, beats, lease_beats
                 FROM agents ORDER BY agent_id";

/// The table of applied migrations.
pub(crate) const CREATE_MIGRATIONS: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)";

/// Deletes topic $1's leader epochs.
pub(crate) const DELETE_TOPIC_EPOCHS: &str = "DELETE FROM leader_epochs WHERE topic = $1";

/// Deletes topic $1's leases.
pub(crate) const DELETE_TOPIC_LEASES: &str = "DELETE FROM leases WHERE topic = $1";

/// Deletes the group offsets committed for topic $1.
pub(crate) const DELETE_TOPIC_OFFSETS: &str = "DELETE FROM group_offsets WHERE topic = $1";

/// Deletes topic $1's producer state.
pub(crate) const DELETE_TOPIC_PRODUCERS: &str = "DELETE FROM producer_state WHERE topic = $1";

/// Deletes topic $1's committed ranges.
pub(crate) const DELETE_TOPIC_RANGES: &str = "DELETE FROM chunk_ranges WHERE topic = $1";

/// Whether migration $1 was applied.
pub(crate) const MIGRATION_APPLIED: &str =
    "SELECT version FROM schema_migrations WHERE version = $1";

/// Takes the next idempotent-producer id.
pub(crate) const NEXT_PRODUCER_ID: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'producer_id' RETURNING value - 1";

/// Takes the next topic incarnation id.
pub(crate) const NEXT_TOPIC_ID: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'topic_id' RETURNING value - 1";

/// Records migration $1 as applied.
pub(crate) const RECORD_MIGRATION: &str = "INSERT INTO schema_migrations (version) VALUES ($1)";

/// The schema version now in the store.
pub(crate) const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/// Stores producer $1's epoch $2.
pub(crate) const SET_PRODUCER_EPOCH: &str =
    "INSERT INTO producer_epochs (producer_id, epoch) VALUES ($1, $2)
             ON CONFLICT (producer_id) DO UPDATE SET epoch = excluded.epoch";

/// Every topic row, by name.
pub(crate) const TOPICS: &str = "SELECT name, id, partitions, config FROM topics ORDER BY name";

/// Writes topic $3's partition count $1 and configuration $2.
pub(crate) const UPDATE_TOPIC: &str =
    "UPDATE topics SET partitions = $1, config = $2 WHERE name = $3";

/// Registers agent $1 (shard addresses $2, heartbeat $3 ms, failed shards
/// $4) or refreshes its row, counting the beat.
pub(crate) const HEARTBEAT: &str =
    "INSERT INTO agents (agent_id, addresses, heartbeat_ms, failed_shards, beats)
     VALUES ($1, $2, $3, $4, 1)
     ON CONFLICT (agent_id) DO UPDATE SET addresses = excluded.addresses,
     heartbeat_ms = excluded.heartbeat_ms, failed_shards = excluded.failed_shards,
     beats = agents.beats + 1";
