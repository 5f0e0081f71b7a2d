//! Statements of consumer groups both backends run: group rows
//! (optimistic versions) and their committed offsets.
//! Written once with `$N` parameters (see [`super::for_sqlite`]).

/// How many groups exist.
pub(crate) const COUNT_GROUPS: &str = "SELECT COUNT(*) FROM consumer_groups";

/// Creates group $1 with state $2 at $3 (ms), unless it exists.
pub(crate) const CREATE_GROUP: &str =
    "INSERT INTO consumer_groups (group_id, state, version, updated_ms) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (group_id) DO NOTHING";

/// Deletes group $1 at version $2.
pub(crate) const DELETE_GROUP: &str =
    "DELETE FROM consumer_groups WHERE group_id = $1 AND version = $2";

/// Deletes group $1's committed offsets.
pub(crate) const DELETE_GROUP_OFFSETS: &str = "DELETE FROM group_offsets WHERE group_id = $1";

/// Group $1's version.
pub(crate) const GROUP_VERSION: &str = "SELECT version FROM consumer_groups WHERE group_id = $1";

/// Group $1's row.
pub(crate) const LOAD_GROUP: &str =
    "SELECT group_id, state, version, updated_ms FROM consumer_groups WHERE group_id = $1";

/// Saves group $1's state $2 at $3 (ms) over version $4.
pub(crate) const SAVE_GROUP: &str =
    "UPDATE consumer_groups SET state = $2, version = version + 1, updated_ms = $3 \
                     WHERE group_id = $1 AND version = $4";

/// Marks group $1 changed at $2 (ms).
pub(crate) const TOUCH_GROUP: &str =
    "UPDATE consumer_groups SET updated_ms = $2 WHERE group_id = $1";
