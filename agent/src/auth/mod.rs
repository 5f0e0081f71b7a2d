//! Who a request comes from and what it may do (`--auth required`): API
//! tokens and their hashes ([`token`]), the credential book every shard
//! reads ([`book`]), a shard's check of one request's credential
//! ([`check`]), the name in a client certificate ([`cert`]), access rules
//! ([`acl`]) and a request's checks against them ([`access`]). Knows no
//! RPC: each declares what it needs; loading the book is the control
//! thread's.

pub mod access;
pub mod acl;
pub mod book;
pub mod cert;
pub mod check;
pub mod token;

pub use access::{Access, Need};
pub use book::{CredentialBook, Principal};
pub use check::Authenticator;
