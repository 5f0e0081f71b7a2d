//! Users and API tokens through [`Admin`]: create, list and delete users,
//! create, list and revoke tokens. With agents started with `--auth
//! required` only a superuser may call these. Answers are the client's own
//! types; a new token comes back once, as a [`Token`], and is never
//! printed by `Debug`. Owns nothing but the calls.

use streamhouse_proto as pb;

use crate::admin::Admin;
use crate::error::Result;
use crate::net::Token;

/// A user, as `list_users` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    /// The user's name.
    pub name: String,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// Tokens it holds.
    pub tokens: u32,
}

/// A token, as `list_tokens` reports it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// Its public id, for `revoke_token`.
    pub id: String,
    /// The user it authenticates as.
    pub user: String,
    /// What it was made for, as given at creation.
    pub description: String,
    /// ms since the Unix epoch.
    pub created_ms: i64,
}

/// A token just made: the only time it is shown.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token, for [`PoolConfig::token`](crate::net::PoolConfig::token).
    pub token: Token,
    /// Its public id.
    pub id: String,
}

impl Admin {
    /// Creates user `name` (1 to 128 bytes of letters, digits and `._@-`).
    ///
    /// # Errors
    /// [`Error::Status`](crate::Error::Status) with `AlreadyExists`,
    /// `InvalidArgument` for a bad name, `ResourceExhausted` past 10,000
    /// users, `PermissionDenied`/`Unauthenticated` for a caller that is not
    /// a superuser; [`Error::Transport`](crate::Error::Transport) when no
    /// agent answers.
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the user may exist.
    pub async fn create_user(&self, name: &str) -> Result<()> {
        let req = pb::CreateUserRequest { name: name.into() };
        self.call(
            "create user",
            |mut c| async move { c.create_user(req).await },
        )
        .await?;
        Ok(())
    }

    /// Deletes user `name` and revokes its tokens.
    ///
    /// # Errors
    /// `NotFound` for an unknown user; otherwise as [`Admin::create_user`].
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the user may be gone.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let req = pb::DeleteUserRequest { name: name.into() };
        self.call(
            "delete user",
            |mut c| async move { c.delete_user(req).await },
        )
        .await?;
        Ok(())
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// As [`Admin::create_user`].
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let r = self
            .call("list users", |mut c| async move {
                c.list_users(pb::ListUsersRequest {}).await
            })
            .await?;
        Ok(r.users
            .into_iter()
            .map(|u| UserInfo {
                name: u.name,
                created_ms: u.created_ms,
                tokens: u.tokens,
            })
            .collect())
    }

    /// Makes a token for `user` (which must exist); `description` (at most
    /// 256 bytes) is shown by `list_tokens`.
    ///
    /// # Errors
    /// `NotFound` for an unknown user, `ResourceExhausted` past 100 tokens
    /// of one user; otherwise as [`Admin::create_user`].
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the token may exist unseen: revoke
    /// it (`list_tokens` shows its id).
    pub async fn create_token(&self, user: &str, description: &str) -> Result<NewToken> {
        let req = pb::CreateTokenRequest {
            user: user.into(),
            description: description.into(),
        };
        let r = self
            .call(
                "create token",
                |mut c| async move { c.create_token(req).await },
            )
            .await?;
        Ok(NewToken {
            token: Token::new(r.token),
            id: r.id,
        })
    }

    /// Revokes token `id`: refused at once by the agent that answered, by
    /// the others within their `--auth-refresh-ms`.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; otherwise as [`Admin::create_user`].
    ///
    /// # Cancellation
    /// Dropped after an agent took it, the token may be revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let req = pb::RevokeTokenRequest { id: id.into() };
        self.call(
            "revoke token",
            |mut c| async move { c.revoke_token(req).await },
        )
        .await?;
        Ok(())
    }

    /// The tokens of `user`, or of every user with `None`.
    ///
    /// # Errors
    /// As [`Admin::create_user`].
    ///
    /// # Cancellation
    /// Read-only: dropping the future has no effect.
    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let req = pb::ListTokensRequest {
            user: user.unwrap_or_default().into(),
        };
        let r = self
            .call(
                "list tokens",
                |mut c| async move { c.list_tokens(req).await },
            )
            .await?;
        Ok(r.tokens
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                user: t.user,
                description: t.description,
                created_ms: t.created_ms,
            })
            .collect())
    }
}
