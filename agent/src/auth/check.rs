//! One shard's authentication of requests ([`Authenticator`]): a bearer
//! token checked against the shard's copy of the credential book (argon2
//! on glommio's blocking pool, once per token: later requests hit the
//! shard's cache of verified tokens, which a revocation empties), else the
//! connection's client-certificate name. No metadata-store call and no
//! lock another core holds on the request path. Owns the shard's cache
//! only.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::access::Access;
use super::book::{CredentialBook, Principal, Snapshot};
use super::token;
use crate::grpc_status::{Code, Status};

/// Tokens one shard remembers as verified: 4096; past it the cache starts
/// over (a token not in it costs one argon2 check again).
pub const MAX_VERIFIED: usize = 4096;
/// argon2 checks one shard runs at once: 4; more get `UNAVAILABLE`, so
/// wrong tokens cannot queue without bound.
pub const MAX_CHECKING: usize = 4;

/// See the module documentation.
pub struct Authenticator {
    book: Arc<CredentialBook>,
    /// The book's version and snapshot as this shard last copied them.
    local: RefCell<(u64, Arc<Snapshot>)>,
    /// Verified tokens: token → the hash it was verified against.
    verified: RefCell<HashMap<String, Arc<str>>>,
    checking: Cell<usize>,
}

impl Authenticator {
    pub fn new(book: Arc<CredentialBook>) -> Rc<Self> {
        let snap = book.snapshot();
        let v = book.version();
        Rc::new(Authenticator {
            book,
            local: RefCell::new((v, snap)),
            verified: RefCell::new(HashMap::new()),
            checking: Cell::new(0),
        })
    }

    /// The shard's copy of the tokens, copied again when the book moved
    /// (a revoked token then fails even on open connections).
    fn tokens(&self) -> Arc<Snapshot> {
        let v = self.book.version();
        let mut local = self.local.borrow_mut();
        if local.0 != v {
            *local = (v, self.book.snapshot());
        }
        local.1.clone()
    }

    /// Who sent a request, with the access rules to check it against: its `authorization` header's bearer token when
    /// there is one, else `cert` (the name in the connection's client
    /// certificate). `UNAUTHENTICATED` without either or for a bad token;
    /// `UNAVAILABLE` when too many token checks are running. Cancelling it
    /// leaves a running argon2 check to finish on the blocking pool.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        cert: Option<&str>,
    ) -> Result<Access, Status> {
        // One copy of the book serves the token check and the rules.
        let rules = self.tokens();
        let principal = self.principal(&rules, authorization, cert).await?;
        Ok(Access { principal, rules })
    }

    /// The principal of [`Authenticator::authenticate`], its token looked
    /// up in `snap`.
    async fn principal(
        &self,
        snap: &Snapshot,
        authorization: Option<&[u8]>,
        cert: Option<&str>,
    ) -> Result<Principal, Status> {
        let Some(value) = authorization else {
            return match cert {
                Some(name) => Ok(self.book.principal(name)),
                None => Err(unauthenticated(
                    "this agent requires authentication: send a token \
                     (authorization: Bearer <token>) or use a client certificate",
                )),
            };
        };
        let Some(presented) = token::bearer(value) else {
            return Err(unauthenticated(
                "the authorization header is not a bearer token (authorization: Bearer <token>)",
            ));
        };
        if let Some(p) = self.book.bootstrap(presented) {
            return Ok(p);
        }
        let Some(parts) = token::parse(presented) else {
            return Err(unauthenticated("malformed token"));
        };
        let Some(entry) = snap.tokens.get(parts.id).cloned() else {
            return Err(unauthenticated(&format!(
                "unknown or revoked token {}",
                parts.id
            )));
        };
        let cached = self
            .verified
            .borrow()
            .get(presented)
            .is_some_and(|h| Arc::ptr_eq(h, &entry.hash) || **h == *entry.hash);
        if !cached {
            if self.checking.get() >= MAX_CHECKING {
                return Err(Status::new(
                    Code::Unavailable,
                    format!("{MAX_CHECKING} token checks are running on this shard; retry"),
                ));
            }
            self.checking.set(self.checking.get() + 1);
            let _done = Decrement(&self.checking);
            let secret = parts.secret.to_owned();
            let hash = entry.hash.clone();
            let ok = glommio::executor()
                .spawn_blocking(move || token::verify(&secret, &hash))
                .await;
            if !ok {
                return Err(unauthenticated(&format!(
                    "wrong secret for token {}",
                    parts.id
                )));
            }
            let mut verified = self.verified.borrow_mut();
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(presented.to_owned(), entry.hash.clone());
        }
        Ok(self.book.principal(&entry.user))
    }
}

/// Gives a running check back when dropped (also when cancelled).
struct Decrement<'a>(&'a Cell<usize>);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn unauthenticated(why: &str) -> Status {
    Status::new(Code::Unauthenticated, why.to_owned())
}
