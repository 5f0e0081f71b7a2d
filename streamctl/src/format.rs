//! How records are written out: kcat-style format strings (`-f`), JSON
//! lines (`-J`), and the backslash escapes both `-f` and the delimiters
//! take. Pure: bytes in, bytes out.

use base64::Engine;
use streamhouse_client::ConsumerRecord;

/// `\n`, `\r`, `\t`, `\0` and `\\` turned into their bytes; any other
/// backslash is kept as it is.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(other) => out.extend_from_slice(&[b'\\', other]),
            None => out.push(b'\\'),
        }
    }
    out
}

/// Where `needle` (not empty) first appears in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One piece of a parsed `-f` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLen,
    Value,
    ValueLen,
    Timestamp,
    Headers,
}

/// A parsed `-f` format string.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `fmt`; an unknown `%x` is an error naming it.
    pub fn parse(fmt: &str) -> Result<Template, String> {
        let raw = unescape(fmt);
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut it = raw.iter().copied();
        while let Some(b) = it.next() {
            if b != b'%' {
                text.push(b);
                continue;
            }
            let piece = match it.next() {
                Some(b'%') => {
                    text.push(b'%');
                    continue;
                }
                Some(b't') => Piece::Topic,
                Some(b'p') => Piece::Partition,
                Some(b'o') => Piece::Offset,
                Some(b'k') => Piece::Key,
                Some(b'K') => Piece::KeyLen,
                Some(b's') | Some(b'v') => Piece::Value,
                Some(b'S') => Piece::ValueLen,
                Some(b'T') => Piece::Timestamp,
                Some(b'h') => Piece::Headers,
                Some(c) => {
                    return Err(format!(
                        "unknown format token %{} in {fmt:?} (see streamctl consume --help)",
                        c as char
                    ))
                }
                None => return Err(format!("format {fmt:?} ends with a lone %")),
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    /// The pieces, in order.
    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.0
    }

    /// The default: the value and a newline.
    pub fn value_lines() -> Template {
        Template(vec![Piece::Value, Piece::Text(b"\n".to_vec())])
    }

    /// Appends `r` formatted to `out`.
    pub fn render(&self, r: &ConsumerRecord, out: &mut Vec<u8>) {
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Topic => out.extend_from_slice(r.topic.as_bytes()),
                Piece::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Piece::Key => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Piece::KeyLen => {
                    let n = r.key.as_ref().map_or(-1, |k| k.len() as i64);
                    out.extend_from_slice(n.to_string().as_bytes());
                }
                Piece::Value => out.extend_from_slice(&r.value),
                Piece::ValueLen => out.extend_from_slice(r.value.len().to_string().as_bytes()),
                Piece::Timestamp => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v);
                    }
                }
            }
        }
    }
}

/// Puts `bytes` into `obj` under `name`: as text when they are UTF-8, else
/// as base64 with `<name>_encoding: "base64"` beside it.
fn put_bytes(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            obj.insert(name.into(), s.into());
        }
        Err(_) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            obj.insert(name.into(), b64.into());
            obj.insert(format!("{name}_encoding"), "base64".into());
        }
    }
}

/// Appends `r` as one line of JSON to `out`.
pub fn json_line(r: &ConsumerRecord, out: &mut Vec<u8>) {
    let mut obj = serde_json::Map::new();
    obj.insert("topic".into(), r.topic.clone().into());
    obj.insert("partition".into(), r.partition.into());
    obj.insert("offset".into(), r.offset.into());
    obj.insert("timestamp".into(), r.timestamp.into());
    match &r.key {
        Some(k) => put_bytes(&mut obj, "key", k),
        None => {
            obj.insert("key".into(), serde_json::Value::Null);
        }
    }
    put_bytes(&mut obj, "value", &r.value);
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let mut h = serde_json::Map::new();
            h.insert("key".into(), k.clone().into());
            put_bytes(&mut h, "value", v);
            h.into()
        })
        .collect();
    obj.insert("headers".into(), headers.into());
    // A map of strings, numbers and arrays always serializes.
    let _ = serde_json::to_writer(&mut *out, &serde_json::Value::Object(obj));
    out.push(b'\n');
}

/// Writes `value` as one line of JSON (the `--format json` answers).
pub fn write_json(
    out: &mut impl std::io::Write,
    value: &impl serde::Serialize,
) -> Result<(), crate::Failure> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec() -> ConsumerRecord {
        ConsumerRecord {
            leader_epoch: None,
            topic: "t".into(),
            partition: 2,
            offset: 7,
            key: Some(Bytes::from_static(b"k1")),
            value: Bytes::from_static(b"\xff\x00v"),
            timestamp: 1234,
            headers: vec![("h".into(), Bytes::from_static(b"x"))],
        }
    }

    #[test]
    fn templates_render_every_token() {
        let t = Template::parse("%t %p %o %k %K %v %S %T %h %%\\n").unwrap();
        let mut out = Vec::new();
        t.render(&rec(), &mut out);
        assert_eq!(out, b"t 2 7 k1 2 \xff\x00v 3 1234 h=x %\n");
        assert!(Template::parse("%q").unwrap_err().contains("%q"));
        assert!(Template::parse("50%").unwrap_err().contains("lone %"));
    }

    #[test]
    fn json_gives_binary_as_base64() {
        let mut out = Vec::new();
        json_line(&rec(), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["key"], "k1");
        assert_eq!(v["value"], "/wB2");
        assert_eq!(v["value_encoding"], "base64");
        assert!(v.get("key_encoding").is_none());
        assert_eq!(v["headers"][0]["value"], "x");
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("a\\tb\\n\\0\\\\\\q"), b"a\tb\n\0\\\\q");
    }
}
