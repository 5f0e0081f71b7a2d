//! [`AgentChannel`]: one HTTP/2 connection to an agent shard with the
//! client's credentials on every call (`authorization: Bearer <token>`,
//! marked sensitive so no debug output shows it), and [`Token`], an API
//! token that never prints. Knows nothing of which RPC a call is.

use std::fmt;
use std::task::{Context, Poll};

use tonic::codegen::http::{self, HeaderValue};
use tonic::codegen::Service;
use tonic::transport::Channel;

/// An API token (`shk_...`, made by `CreateToken` / `streamctl token
/// create`). Its `Debug` shows only its public id.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token as an agent issued it (or an agent's bootstrap
    /// token).
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into().trim().to_owned())
    }

    /// The token itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its public id (the part between `shk_` and the secret), if it has
    /// the agents' format.
    pub fn id(&self) -> Option<&str> {
        let rest = self.0.strip_prefix("shk_")?;
        rest.split_once('_').map(|(id, _)| id)
    }

    /// The `authorization` header value, marked sensitive; `None` when the
    /// token holds bytes no header may.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.0)).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id() {
            Some(id) => write!(f, "Token(shk_{id}_…)"),
            None => f.write_str("Token(…)"),
        }
    }
}

/// A connection to an agent shard that adds the client's credentials to
/// every call. Cheap to clone (one connection, shared).
#[derive(Clone, Debug)]
pub struct AgentChannel {
    inner: Channel,
    authorization: Option<HeaderValue>,
}

impl AgentChannel {
    /// `inner` sending `authorization` (a sensitive header value) with
    /// every call, if given.
    pub(crate) fn new(inner: Channel, authorization: Option<HeaderValue>) -> AgentChannel {
        AgentChannel {
            inner,
            authorization,
        }
    }
}

impl Service<http::Request<tonic::body::Body>> for AgentChannel {
    type Response = <Channel as Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(v) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, v.clone());
        }
        Service::call(&mut self.inner, request)
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn a_token_never_prints() {
        let t = Token::new("shk_0123456789abcdef_SECRETSECRET\n");
        assert_eq!(t.expose(), "shk_0123456789abcdef_SECRETSECRET");
        assert_eq!(t.id(), Some("0123456789abcdef"));
        let shown = format!("{t:?} {:?}", Some(&t));
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("0123456789abcdef"));
        let other = format!("{:?}", Token::new("bootstrap-secret-value"));
        assert!(!other.contains("secret"), "{other}");
        let h = t.header().unwrap();
        assert!(h.is_sensitive());
        assert!(Token::new("bad\u{0}token").header().is_none());
    }
}
