//! Statements of partition leases both backends run: setting, releasing
//! and reading leases, the leader-epoch history and lease beats.
//! Written once with `$N` parameters (see [`super::for_sqlite`]).

/// The newest $3 epochs of a partition ($1, $2) and where each began.
pub(crate) const EPOCH_STARTS: &str =
    "SELECT epoch, start_offset FROM leader_epochs WHERE topic = $1 AND part = $2
                 ORDER BY epoch DESC LIMIT $3";

/// A partition's lease row ($1, $2).
pub(crate) const LEASE: &str =
    "SELECT holder, epoch, expires_ms FROM leases WHERE topic = $1 AND part = $2";

/// How many lease grants and renewals agent $1 made.
pub(crate) const LEASE_BEATS: &str = "SELECT lease_beats FROM agents WHERE agent_id = $1";

/// Releases a lease ($1, $2) if holder $3 still holds it at epoch $4.
pub(crate) const RELEASE_LEASE: &str = "UPDATE leases SET expires_ms = 0 WHERE topic = $1 AND part = $2 AND holder = $3 AND epoch = $4";

/// Gives a partition's lease ($1, $2) to holder $3 at epoch $4 until $5 (ms).
pub(crate) const SET_LEASE: &str =
    "UPDATE leases SET holder = $3, epoch = $4, expires_ms = $5 WHERE topic = $1 AND part = $2";

/// Every lease row of topic $1, by partition.
pub(crate) const TOPIC_LEASES: &str =
    "SELECT part, holder, epoch, expires_ms FROM leases WHERE topic = $1 ORDER BY part";

/// Records, inside a lease acquisition's transaction, that a newly granted
/// epoch begins at the partition's committed end (parameters: topic,
/// partition, epoch). The `WHERE` also settles SQLite's
/// `INSERT ... SELECT ... ON CONFLICT` parsing.
pub(crate) const RECORD_EPOCH_START: &str =
    "INSERT INTO leader_epochs (topic, part, epoch, start_offset)
     SELECT CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), COALESCE(MAX(end_offset), 0)
     FROM chunk_ranges WHERE topic = $1 AND part = $2
     ON CONFLICT (topic, part, epoch) DO NOTHING";
