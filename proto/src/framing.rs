//! gRPC's framing of a message on HTTP/2, as the agent's own server reads
//! and writes it: the 5-byte prefix of each message (flag, big-endian
//! length), a reply framed behind it ([`frame_message`]) and the
//! `grpc-timeout` header value. Pure functions of bytes and text, so the
//! fuzz targets and tests exercise exactly what the agent runs. Owns no
//! I/O and no status codes (the agent maps [`PrefixError`] to them).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

/// Bytes before every gRPC message: 1 flag byte and a 4-byte big-endian
/// length.
pub const PREFIX_LEN: usize = 5;

/// `msg` encoded behind its prefix (flag 0: uncompressed), in one buffer.
pub fn frame_message(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(len + PREFIX_LEN);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // The buffer has room for the whole message, so encoding cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// Why a message prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Flag 1: the message is compressed, which StreamHouse does not accept.
    #[error(
        "compressed gRPC messages are not supported; send uncompressed \
         (grpc-accept-encoding: identity)"
    )]
    Compressed,
    /// A flag with reserved bits set.
    #[error("gRPC message flag {0:#04x} has reserved bits set")]
    ReservedFlag(u8),
    /// The declared length is over the limit.
    #[error("request of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
}

/// The flag byte and declared message length of a prefix, or `None` when
/// fewer than [`PREFIX_LEN`] bytes are given.
pub fn split_prefix(bytes: &[u8]) -> Option<(u8, usize)> {
    match bytes {
        [flag, a, b, c, d, ..] => Some((*flag, u32::from_be_bytes([*a, *b, *c, *d]) as usize)),
        _ => None,
    }
}

/// Checks a message prefix: `flag` must be 0 (uncompressed; 1 is
/// compressed, other values have reserved bits) and `len`, the declared
/// message bytes, at most `limit`.
pub fn check_prefix(flag: u8, len: usize, limit: usize) -> Result<(), PrefixError> {
    match flag {
        0 => {}
        1 => return Err(PrefixError::Compressed),
        other => return Err(PrefixError::ReservedFlag(other)),
    }
    if len > limit {
        return Err(PrefixError::TooLarge { len, limit });
    }
    Ok(())
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H`
/// hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
/// `n` nanoseconds), as the gRPC spec defines it. `None` for anything else.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (num, unit) = value.split_at(value.len() - 1);
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_by_the_spec() {
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in ["", "m", "3x", "+3S", "123456789S", "1.5S", "-1m"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_checked_against_the_limit() {
        assert_eq!(split_prefix(&[0, 0, 0, 1, 0, 9]), Some((0, 256)));
        assert_eq!(split_prefix(&[0, 0, 0, 1]), None);
        assert_eq!(check_prefix(0, 64, 64), Ok(()));
        assert_eq!(
            check_prefix(0, 65, 64),
            Err(PrefixError::TooLarge { len: 65, limit: 64 })
        );
        assert_eq!(check_prefix(1, 0, 64), Err(PrefixError::Compressed));
        assert_eq!(
            check_prefix(0x80, 0, 64),
            Err(PrefixError::ReservedFlag(0x80))
        );
        assert_eq!(
            PrefixError::ReservedFlag(0x80).to_string(),
            "gRPC message flag 0x80 has reserved bits set"
        );
    }
}
