//! The statements of users and API tokens both backends run (`$N`
//! parameters, see [`super::for_sqlite`]). Every change first bumps
//! `security_version`, which also serialises changes on PostgreSQL (the
//! counter's row lock), so the checks after it see every earlier change.

/// The version of the users and tokens (grows with every change).
pub(crate) const VERSION: &str = "SELECT value FROM counters WHERE name = 'security_version'";

/// Bumps the version.
pub(crate) const BUMP: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'security_version'";

/// How many users exist.
pub(crate) const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";

/// Creates user $1 at $2 (ms); affects no row when it exists.
pub(crate) const INSERT_USER: &str =
    "INSERT INTO users (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

/// Deletes user $1.
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE name = $1";

/// Deletes every token of user $1.
pub(crate) const DELETE_USER_TOKENS: &str = "DELETE FROM tokens WHERE user_name = $1";

/// 1 when user $1 exists, else no row.
pub(crate) const USER_EXISTS: &str = "SELECT 1 FROM users WHERE name = $1";

/// How many tokens user $1 holds.
pub(crate) const COUNT_TOKENS: &str = "SELECT COUNT(*) FROM tokens WHERE user_name = $1";

/// Stores token $1 of user $2 (hash $3, description $4, created $5).
pub(crate) const INSERT_TOKEN: &str =
    "INSERT INTO tokens (id, user_name, hash, description, created_ms) VALUES ($1, $2, $3, $4, $5)";

/// Deletes token $1.
pub(crate) const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = $1";

/// Every user: name, created, tokens held.
pub(crate) const USERS: &str = "SELECT u.name, u.created_ms,
         (SELECT COUNT(*) FROM tokens t WHERE t.user_name = u.name)
     FROM users u ORDER BY u.name";

/// How many rules exist.
pub(crate) const COUNT_ACLS: &str = "SELECT COUNT(*) FROM acls";

/// Adds a rule ($1..$6: principal, resource type, pattern type, name,
/// operation, permission); affects no row when it exists.
pub(crate) const INSERT_ACL: &str = "INSERT INTO acls (principal, resource_type, pattern_type,
         resource_name, operation, permission) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT DO NOTHING";

/// Removes a rule ($1..$6 as in [`INSERT_ACL`]).
pub(crate) const DELETE_ACL: &str = "DELETE FROM acls WHERE principal = $1 AND resource_type = $2
     AND pattern_type = $3 AND resource_name = $4 AND operation = $5 AND permission = $6";

/// Every rule, in key order.
pub(crate) const ACLS: &str = "SELECT principal, resource_type, pattern_type, resource_name,
         operation, permission FROM acls
     ORDER BY principal, resource_type, pattern_type, resource_name, operation, permission";

/// Every token of an existing user: id, user, hash, description, created.
pub(crate) const TOKENS: &str = "SELECT t.id, t.user_name, t.hash, t.description, t.created_ms
     FROM tokens t JOIN users u ON u.name = t.user_name ORDER BY t.user_name, t.id";
