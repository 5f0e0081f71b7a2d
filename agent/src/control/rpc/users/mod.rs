//! The user and token RPCs (`AdminService/CreateUser` ... `ListTokens`),
//! one unit per file; each checks its caller is a superuser (with
//! `--auth required`) and changes or reads the store through
//! `control::security`. Answers never carry a token's hash.

pub(crate) mod create_token;
pub(crate) mod create_user;
pub(crate) mod delete_user;
pub(crate) mod list_tokens;
pub(crate) mod list_users;
pub(crate) mod revoke_token;
