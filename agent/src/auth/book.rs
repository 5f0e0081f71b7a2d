//! The credential book: the users' tokens (their hashes) as the control
//! thread last loaded them from the metadata store, the superusers and the
//! bootstrap token from the configuration. Shared by every shard; a shard
//! reads only [`CredentialBook::version`] per request (an atomic) and
//! copies the snapshot when it moved, so the request path takes no lock
//! another core holds. Owns no I/O: loading is `control::security`'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::acl::AclRule;
use crate::metastore::security::SecurityRows;

/// The principal the bootstrap token (`--bootstrap-token-file`)
/// authenticates as; always a superuser.
pub const BOOTSTRAP_PRINCIPAL: &str = "bootstrap";

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A user's name (token), a client certificate's name (mutual TLS), or
    /// [`BOOTSTRAP_PRINCIPAL`].
    pub name: Arc<str>,
    /// Listed in `--superusers` (or the bootstrap principal): allowed
    /// everything, the user and token RPCs included.
    pub superuser: bool,
}

/// A token the store knows.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub user: Arc<str>,
    /// Salted argon2id hash of its secret.
    pub hash: Arc<str>,
}

/// The tokens at one metadata-store version.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's `security_version` they were read at (0: none read yet).
    pub version: i64,
    /// By token id.
    pub tokens: HashMap<String, TokenEntry>,
    /// Every access rule.
    pub acls: Vec<AclRule>,
}

/// See the module documentation.
pub struct CredentialBook {
    superusers: HashSet<String>,
    bootstrap: Option<String>,
    current: Mutex<Arc<Snapshot>>,
    /// Bumped by every install; shards compare it with their copy's.
    version: AtomicU64,
}

impl CredentialBook {
    /// An empty book (no token known until the first install).
    pub fn new(superusers: impl IntoIterator<Item = String>, bootstrap: Option<String>) -> Self {
        CredentialBook {
            superusers: superusers.into_iter().collect(),
            bootstrap,
            current: Mutex::new(Arc::new(Snapshot::default())),
            version: AtomicU64::new(0),
        }
    }

    /// Installs the rows read from the store, unless they are what the
    /// book holds already; returns whether it changed.
    pub fn install(&self, rows: &SecurityRows) -> bool {
        let mut cur = self.current.lock();
        if cur.version == rows.version && rows.version != 0 {
            return false;
        }
        let tokens = rows
            .tokens
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    TokenEntry {
                        user: Arc::from(t.user.as_str()),
                        hash: Arc::from(t.hash.as_str()),
                    },
                )
            })
            .collect();
        let acls = rows
            .acls
            .iter()
            .filter_map(|row| match AclRule::from_row(row) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    tracing::warn!(error = %e, ?row, "ignoring an access rule this agent cannot read");
                    None
                }
            })
            .collect();
        *cur = Arc::new(Snapshot {
            version: rows.version,
            tokens,
            acls,
        });
        self.version.fetch_add(1, Ordering::Release);
        true
    }

    /// Counts installs; a shard copies [`CredentialBook::snapshot`] again
    /// when it moved.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The tokens now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.lock().clone()
    }

    /// The store version of the tokens now (0 before the first load).
    pub fn store_version(&self) -> i64 {
        self.current.lock().version
    }

    /// `name` as a principal (a superuser when listed).
    pub fn principal(&self, name: &str) -> Principal {
        Principal {
            name: Arc::from(name),
            superuser: self.superusers.contains(name),
        }
    }

    /// The bootstrap principal if `token` is the bootstrap token.
    pub fn bootstrap(&self, token: &str) -> Option<Principal> {
        let b = self.bootstrap.as_deref()?;
        super::token::same_secret(b, token).then(|| Principal {
            name: Arc::from(BOOTSTRAP_PRINCIPAL),
            superuser: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metastore::security::TokenRow;

    fn rows(version: i64, ids: &[&str]) -> SecurityRows {
        SecurityRows {
            version,
            users: vec![],
            tokens: ids
                .iter()
                .map(|id| TokenRow {
                    id: (*id).into(),
                    user: "u".into(),
                    hash: "h".into(),
                    description: String::new(),
                    created_ms: 0,
                })
                .collect(),
            acls: vec![],
        }
    }

    #[test]
    fn installs_bump_the_version_only_when_the_store_moved() {
        let b = CredentialBook::new(["root".to_string()], Some("boot-secret".into()));
        assert_eq!(b.version(), 0);
        assert!(b.install(&rows(3, &["a", "b"])));
        assert_eq!(b.version(), 1);
        assert!(!b.install(&rows(3, &["a", "b"])));
        assert_eq!(b.version(), 1);
        assert!(b.install(&rows(4, &["a"])));
        assert_eq!(b.version(), 2);
        assert!(b.snapshot().tokens.contains_key("a"));
        assert!(!b.snapshot().tokens.contains_key("b"));
        assert!(b.principal("root").superuser);
        assert!(!b.principal("alice").superuser);
        assert!(b.bootstrap("boot-secret").is_some_and(|p| p.superuser));
        assert!(b.bootstrap("boot-secreT").is_none());
        assert!(CredentialBook::new([], None).bootstrap("").is_none());
    }
}
