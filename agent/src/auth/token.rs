//! API tokens: their format (`shk_<id>_<secret>`: a 16-hex-digit public
//! id, then 32 random bytes in unpadded base64url), making one, and the
//! salted argon2id hash the metadata store keeps of its secret. Pure
//! functions; randomness is passed in. Owns no storage and no cache.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;

/// What every token starts with.
pub const PREFIX: &str = "shk_";
/// Length of a token's id, hex digits.
pub const ID_LEN: usize = 16;
/// Random bytes of a token's secret.
pub const SECRET_BYTES: usize = 32;
/// Longest `authorization` header value looked at, bytes: 512 (a token is
/// 64); a longer one is refused before any parsing.
pub const MAX_HEADER: usize = 512;

/// A newly made token: shown once, then only its hash is kept.
pub struct NewToken {
    /// The whole token, as clients send it.
    pub token: String,
    /// Its public id.
    pub id: String,
    /// Salted argon2id hash of the secret, PHC string format.
    pub hash: String,
}

/// A token as a client sent it, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Makes a token from `rng`. Fails only if hashing fails (it does not with
/// the default parameters).
pub fn make(rng: &mut impl RngCore) -> Result<NewToken, String> {
    let mut id = [0u8; ID_LEN / 2];
    rng.fill_bytes(&mut id);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("token salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| format!("hashing a token: {e}"))?
        .to_string();
    Ok(NewToken {
        token: format!("{PREFIX}{id}_{secret}"),
        id,
        hash,
    })
}

/// Splits a token; `None` when it is not one of ours.
pub fn parse(token: &str) -> Option<Presented<'_>> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = !secret.is_empty()
        && secret.len() <= 64
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(Presented { id, secret })
}

/// Whether `secret` matches `hash` (slow by design: tens of ms; run it
/// off the shard's executor). A hash that does not parse matches nothing.
pub fn verify(secret: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
}

/// The token of an `authorization: Bearer <token>` header value; `None`
/// when the value is not a bearer credential.
pub fn bearer(value: &[u8]) -> Option<&str> {
    if value.len() > MAX_HEADER {
        return None;
    }
    let v = std::str::from_utf8(value).ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares two secrets in time that depends on their lengths only.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_made_token_parses_and_verifies_and_nothing_else_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t = make(&mut rng).unwrap();
        assert!(t.token.starts_with("shk_"));
        assert_eq!(t.token.len(), 4 + 16 + 1 + 43);
        let p = parse(&t.token).unwrap();
        assert_eq!(p.id, t.id);
        assert!(verify(p.secret, &t.hash));
        // The hash is salted and names argon2id; it holds no secret.
        assert!(t.hash.starts_with("$argon2id$"));
        assert!(!t.hash.contains(p.secret));
        let mut wrong = p.secret.to_owned();
        wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
        assert!(!verify(&wrong, &t.hash));
        assert!(!verify(p.secret, "not a hash"));
        let other = make(&mut rng).unwrap();
        assert_ne!(other.id, t.id);
        assert!(!verify(p.secret, &other.hash));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "shk_",
            "shk_0123456789abcdef",
            "shk_0123456789abcdef_",
            "shk_0123456789abcdeg_secret",
            "shk_0123_secret",
            "xyz_0123456789abcdef_secret",
            "shk_0123456789abcdef_sec ret",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let long = format!("shk_0123456789abcdef_{}", "a".repeat(65));
        assert_eq!(parse(&long), None);
        assert_eq!(
            parse("shk_0123456789abcdef_a_b-c"),
            Some(Presented {
                id: "0123456789abcdef",
                secret: "a_b-c"
            })
        );
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(&[0xff, 0xfe]), None);
        let huge = format!("Bearer {}", "a".repeat(MAX_HEADER));
        assert_eq!(bearer(huge.as_bytes()), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
