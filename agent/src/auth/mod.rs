//! Who a request comes from (`--auth required`): API tokens and their
//! hashes ([`token`]), the credential book every shard reads ([`book`]),
//! a shard's check of one request ([`check`]) and the name in a client
//! certificate ([`cert`]). Knows nothing of topics or RPCs beyond the
//! request's headers; loading the book is the control thread's.

pub mod book;
pub mod cert;
pub mod check;
pub mod token;

pub use book::{CredentialBook, Principal};
pub use check::Authenticator;
