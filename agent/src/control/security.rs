//! Users, API tokens and access rules on the control thread: keeping the credential book
//! current (a query of the store's `security_version` every
//! `--auth-refresh-ms`, a full load only when it moved, and at once after a
//! change made here), and the changes the user and token RPCs make: names
//! checked, a token made and only its hash stored, refusals named. Who may
//! call them is checked here too ([`require_superuser`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::token;
use crate::messages::ControlError;
use crate::metastore::security::{ChangeOutcome, SecurityChange, SecurityRows, TokenRow};
use crate::metastore::MetaError;
use crate::runtime::clock::now_ms;

use super::rpc::Caller;
use super::state::Shared;

/// Longest user name, bytes: 128.
pub const MAX_USER_NAME: usize = 128;
/// Longest token description, bytes: 256.
pub const MAX_DESCRIPTION: usize = 256;
/// Longest resource name or prefix in an access rule, bytes: 256.
pub const MAX_RESOURCE_NAME: usize = 256;

impl Shared {
    /// Loads users and tokens into the credential book when the store's
    /// version moved; returns whether it did.
    pub(super) async fn sync_credentials(&self) -> Result<bool, MetaError> {
        let version = self.meta.security_version().await?;
        if version == self.credentials.store_version() {
            return Ok(false);
        }
        let rows = self.meta.security().await?;
        Ok(self.credentials.install(&rows))
    }

    /// Every user and token (hashes included: for the RPCs' answers, which
    /// leave them out).
    pub(super) async fn security_rows(&self) -> Result<SecurityRows, ControlError> {
        self.meta.security().await.map_err(store_error)
    }

    /// Applies `change`, mapping a refusal to its error, and reloads the
    /// book so this agent's shards see it at once.
    pub(super) async fn change_security(
        &self,
        change: SecurityChange,
        what: &str,
    ) -> Result<(), ControlError> {
        let outcome = self
            .meta
            .change_security(&change)
            .await
            .map_err(store_error)?;
        match outcome {
            ChangeOutcome::Done => {}
            ChangeOutcome::Exists => {
                return Err(ControlError::AlreadyExists(format!(
                    "{what} already exists"
                )))
            }
            ChangeOutcome::Missing => {
                return Err(ControlError::Missing(format!("{what} does not exist")))
            }
            ChangeOutcome::Limit(why) => return Err(ControlError::Exhausted(why)),
        }
        if self.config.auth.required() {
            if let Err(e) = self.sync_credentials().await {
                tracing::warn!(error = %e, "cannot reload users and tokens after a change; the next sync will");
            }
        }
        Ok(())
    }

    /// Makes a token for `user` (it must exist) and stores its hash;
    /// returns the token (shown once) and its id.
    pub(super) async fn create_token(
        &self,
        user: String,
        description: String,
    ) -> Result<(String, String), ControlError> {
        check_user_name(&user)?;
        if description.len() > MAX_DESCRIPTION {
            return Err(ControlError::Invalid(format!(
                "a token's description is at most {MAX_DESCRIPTION} bytes"
            )));
        }
        // argon2 takes tens of ms: not on the control thread's loop.
        let made = tokio::task::spawn_blocking(|| token::make(&mut rand::rngs::OsRng))
            .await
            .map_err(|e| ControlError::Internal(format!("making a token: {e}")))?
            .map_err(ControlError::Internal)?;
        let row = TokenRow {
            id: made.id.clone(),
            user: user.clone(),
            hash: made.hash,
            description,
            created_ms: now_ms(),
        };
        self.change_security(
            SecurityChange::CreateToken { token: row },
            &format!("user {user}"),
        )
        .await?;
        Ok((made.token, made.id))
    }
}

/// Reloads the credential book every `every` until the agent stops; a
/// failed load is logged and retried at the next tick (the book keeps what
/// it had).
pub(super) async fn sync_credentials_every(shared: Arc<Shared>, every: Duration) {
    while !shared.stop.load(Ordering::Acquire) {
        tokio::time::sleep(every).await;
        if let Err(e) = shared.sync_credentials().await {
            tracing::warn!(error = %e, "cannot reload users and tokens; keeping the ones loaded");
        }
    }
}

/// With `--auth required`, refuses a caller that is not a superuser.
pub(super) fn require_superuser(
    shared: &Shared,
    caller: &Caller,
    op: &str,
) -> Result<(), ControlError> {
    if !shared.config.auth.required() {
        return Ok(());
    }
    match caller.access.as_ref().map(|a| &a.principal) {
        Some(p) if p.superuser => Ok(()),
        Some(p) => Err(ControlError::Denied(format!(
            "{} may not {op}: only superusers (--superusers) may",
            p.name
        ))),
        None => Err(ControlError::Denied(format!("{op} needs a superuser"))),
    }
}

/// A user name: 1 to 128 bytes of letters, digits and `._@-`.
pub(super) fn check_user_name(name: &str) -> Result<(), ControlError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "invalid user name {name:?}: 1 to {MAX_USER_NAME} bytes of letters, digits and ._@-"
        )))
    }
}

fn store_error(e: MetaError) -> ControlError {
    ControlError::Unavailable(format!("metadata store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::check_user_name;

    #[test]
    fn user_names() {
        for ok in ["alice", "svc.billing-1", "a@b.c", "x_y"] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ü", &"a".repeat(129)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }
}
