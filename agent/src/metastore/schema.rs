//! The metadata store's schema: versioned migrations (the common SQL of
//! SQLite and PostgreSQL) and statements both backends run verbatim.

/// Versioned schema migrations, applied in order in one transaction each.
/// The SQL is the common subset of SQLite and PostgreSQL.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
     INSERT INTO counters (name, value) VALUES ('topic_id', 1), ('producer_id', 1);
     CREATE TABLE topics (name TEXT PRIMARY KEY, id BIGINT NOT NULL, partitions BIGINT NOT NULL);
     CREATE TABLE leases (topic TEXT NOT NULL, part BIGINT NOT NULL, holder TEXT NOT NULL,
         epoch BIGINT NOT NULL, expires_ms BIGINT NOT NULL, PRIMARY KEY (topic, part));
     CREATE TABLE chunks (key TEXT PRIMARY KEY, agent TEXT NOT NULL, size BIGINT NOT NULL);
     CREATE TABLE chunk_ranges (topic TEXT NOT NULL, part BIGINT NOT NULL,
         base_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL, chunk_key TEXT NOT NULL,
         pos BIGINT NOT NULL, len BIGINT NOT NULL, epoch BIGINT NOT NULL,
         PRIMARY KEY (topic, part, base_offset));
     CREATE INDEX chunk_ranges_end ON chunk_ranges (topic, part, end_offset);
     CREATE TABLE agents (agent_id TEXT PRIMARY KEY, addresses TEXT NOT NULL,
         heartbeat_ms BIGINT NOT NULL);",
    ),
    (
        2,
        "CREATE TABLE producer_state (topic TEXT NOT NULL, part BIGINT NOT NULL,
         producer_id BIGINT NOT NULL, batches TEXT NOT NULL, end_offset BIGINT NOT NULL,
         updated_ms BIGINT NOT NULL, PRIMARY KEY (topic, part, producer_id));",
    ),
    (
        3,
        "CREATE TABLE producer_epochs (producer_id BIGINT PRIMARY KEY, epoch BIGINT NOT NULL);",
    ),
    (
        4,
        "ALTER TABLE agents ADD COLUMN failed_shards TEXT NOT NULL DEFAULT '';",
    ),
    (
        5,
        "CREATE TABLE consumer_groups (group_id TEXT PRIMARY KEY, state TEXT NOT NULL,
         version BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
     CREATE TABLE group_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, part BIGINT NOT NULL,
         committed_offset BIGINT NOT NULL, metadata TEXT NOT NULL, commit_ms BIGINT NOT NULL,
         PRIMARY KEY (group_id, topic, part));
     CREATE INDEX group_offsets_topic ON group_offsets (topic);",
    ),
    (
        6,
        "CREATE TABLE leader_epochs (topic TEXT NOT NULL, part BIGINT NOT NULL,
         epoch BIGINT NOT NULL, start_offset BIGINT NOT NULL, PRIMARY KEY (topic, part, epoch));
     ALTER TABLE group_offsets ADD COLUMN leader_epoch BIGINT NOT NULL DEFAULT 0;",
    ),
    (
        7,
        // NULL: committed before the time index existed (read to find out).
        "ALTER TABLE chunk_ranges ADD COLUMN max_timestamp BIGINT;",
    ),
    (
        8,
        // A coordinator reads a group's version on every request: from this
        // index, not past the state stored before it in the row.
        "CREATE INDEX consumer_groups_version ON consumer_groups (group_id, version);",
    ),
    (
        9,
        // Counters other agents watch on their own monotonic clocks (no
        // wall-clock time one agent wrote is compared with another's):
        // `beats` grows with each heartbeat, `lease_beats` with each
        // lease grant and renewal (see `control/members.rs`).
        "ALTER TABLE agents ADD COLUMN beats BIGINT NOT NULL DEFAULT 0;
     ALTER TABLE agents ADD COLUMN lease_beats BIGINT NOT NULL DEFAULT 0;",
    ),
    (
        10,
        // The keys a topic set (`retention.ms=...` lines, see
        // `text::encode_config`); the others follow the cluster defaults.
        "ALTER TABLE topics ADD COLUMN config TEXT NOT NULL DEFAULT '';",
    ),
    (
        11,
        // A partition's first readable offset, as retention and
        // DeleteRecords moved it, and where the ranges they deleted ended
        // (its committed end when none is left). The chunk index looked up
        // by object, for the sweep of objects no range references.
        "CREATE TABLE log_starts (topic TEXT NOT NULL, part BIGINT NOT NULL,
         start_offset BIGINT NOT NULL, deleted_end BIGINT NOT NULL, PRIMARY KEY (topic, part));
     CREATE INDEX chunk_ranges_chunk ON chunk_ranges (chunk_key);",
    ),
    (
        12,
        // A range's own bytes (its frames, without other partitions'
        // frames between them); NULL: committed before, counted as `len`.
        "ALTER TABLE chunk_ranges ADD COLUMN bytes BIGINT;",
    ),
    (
        13,
        // Users and their API tokens (only each token's salted argon2
        // hash); `security_version` grows with every change of either, so
        // agents reload them only when it moved.
        "CREATE TABLE users (name TEXT PRIMARY KEY, created_ms BIGINT NOT NULL);
     CREATE TABLE tokens (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, hash TEXT NOT NULL,
         description TEXT NOT NULL, created_ms BIGINT NOT NULL);
     CREATE INDEX tokens_user ON tokens (user_name);
     INSERT INTO counters (name, value) VALUES ('security_version', 1);",
    ),
    (
        14,
        // Access control rules (`auth::acl`), in their text forms; a
        // change bumps `security_version` as user and token changes do.
        "CREATE TABLE acls (principal TEXT NOT NULL, resource_type TEXT NOT NULL,
         pattern_type TEXT NOT NULL, resource_name TEXT NOT NULL, operation TEXT NOT NULL,
         permission TEXT NOT NULL,
         PRIMARY KEY (principal, resource_type, pattern_type, resource_name, operation, permission));",
    ),
];

/// Counts one more lease grant or renewal of an agent (parameter: agent
/// id), inside the transaction or statement that granted or renewed:
/// agents watching `lease_beats` stand still see its leases as unrenewed.
pub(crate) const BUMP_LEASE_BEATS: &str =
    "INSERT INTO agents (agent_id, addresses, heartbeat_ms, lease_beats) VALUES ($1, '', 0, 1)
     ON CONFLICT (agent_id) DO UPDATE SET lease_beats = agents.lease_beats + 1";
