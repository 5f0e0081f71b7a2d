//! `produce -f`: each input record parsed by a format string, so every
//! record can carry its own key, partition, timestamp and headers. The
//! same `%` tokens as `consume -f` print (see [`crate::format`]), so what
//! a consume writes with a format can be produced again with it. Pure:
//! bytes in, fields out; sending is `produce`'s.

use crate::format::{find, Piece, Template};

/// The fields one input record gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// `%k`; an empty key is no key.
    pub key: Option<Vec<u8>>,
    /// `%v` or `%s`; empty when the format has none.
    pub value: Vec<u8>,
    /// `%p`.
    pub partition: Option<u32>,
    /// `%T`, ms since the Unix epoch.
    pub timestamp: Option<i64>,
    /// `%h`: `k=v` pairs separated by commas.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A field token of the format, or text that must appear as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Value,
    Partition,
    Timestamp,
    Headers,
}

/// A parsed `produce -f` format.
#[derive(Debug)]
pub struct InputFormat {
    pieces: Vec<Result<Field, Vec<u8>>>,
}

impl InputFormat {
    /// Parses `fmt`. Tokens: %k key, %v or %s value, %p partition, %T
    /// timestamp, %h headers, %% a percent sign; escapes as for `-D`. Two
    /// fields need text between them (it is what ends the first).
    pub fn parse(fmt: &str) -> Result<InputFormat, String> {
        let template = Template::parse(fmt)?;
        let mut pieces = Vec::new();
        for p in template.pieces() {
            pieces.push(match p {
                Piece::Text(t) => Err(t.clone()),
                Piece::Key => Ok(Field::Key),
                Piece::Value => Ok(Field::Value),
                Piece::Partition => Ok(Field::Partition),
                Piece::Timestamp => Ok(Field::Timestamp),
                Piece::Headers => Ok(Field::Headers),
                other => {
                    return Err(format!(
                        "{fmt:?}: {} cannot be read from input (produce takes %k %v %s %p %T %h)",
                        token(other)
                    ))
                }
            });
        }
        if pieces.windows(2).any(|w| w[0].is_ok() && w[1].is_ok()) {
            return Err(format!(
                "{fmt:?}: two fields in a row; put the text that ends the first between them"
            ));
        }
        let seen: Vec<Field> = pieces
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .copied()
            .collect();
        for f in &seen {
            if seen.iter().filter(|g| *g == f).count() > 1 {
                return Err(format!("{fmt:?}: a field appears twice"));
            }
        }
        Ok(InputFormat { pieces })
    }

    /// Whether the format gives each record its partition.
    pub fn has_partition(&self) -> bool {
        self.pieces.contains(&Ok(Field::Partition))
    }

    /// Splits one record (its delimiter already removed) into fields; each
    /// field ends where the text after it first appears, the last one at
    /// the record's end. `now_ms` is for relative timestamps (`-1h`).
    pub fn read(&self, record: &[u8], now_ms: u64) -> Result<Fields, String> {
        let mut out = Fields::default();
        let mut at = 0;
        for (i, piece) in self.pieces.iter().enumerate() {
            match piece {
                Err(text) => {
                    if !record[at..].starts_with(text) {
                        return Err(format!(
                            "expected {:?} at byte {at}",
                            String::from_utf8_lossy(text)
                        ));
                    }
                    at += text.len();
                }
                Ok(field) => {
                    let end = match self.pieces.get(i + 1) {
                        Some(Err(text)) => {
                            find(&record[at..], text).map(|n| at + n).ok_or_else(|| {
                                format!(
                                    "no {:?} after byte {at} to end {}",
                                    String::from_utf8_lossy(text),
                                    name(*field)
                                )
                            })?
                        }
                        _ => record.len(),
                    };
                    set(&mut out, *field, &record[at..end], now_ms)?;
                    at = end;
                }
            }
        }
        if at != record.len() {
            return Err(format!(
                "{} bytes after the end of the format",
                record.len() - at
            ));
        }
        Ok(out)
    }
}

fn set(out: &mut Fields, field: Field, bytes: &[u8], now_ms: u64) -> Result<(), String> {
    let text = || std::str::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", name(field)));
    match field {
        Field::Key => out.key = (!bytes.is_empty()).then(|| bytes.to_vec()),
        Field::Value => out.value = bytes.to_vec(),
        Field::Partition => {
            let t = text()?;
            out.partition = Some(
                t.parse()
                    .map_err(|_| format!("partition {t:?} is not a partition number"))?,
            );
        }
        Field::Timestamp => {
            let t = text()?;
            let ms = streamhouse_client::parse_time_ms(t, now_ms)
                .map_err(|e| format!("timestamp {t:?}: {e}"))?;
            out.timestamp =
                Some(i64::try_from(ms).map_err(|_| format!("timestamp {t:?} is too large"))?);
        }
        Field::Headers => {
            for pair in text()?.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("header {pair:?} is not KEY=VALUE"))?;
                out.headers.push((k.to_owned(), v.as_bytes().to_vec()));
            }
        }
    }
    Ok(())
}

fn name(f: Field) -> &'static str {
    match f {
        Field::Key => "the key (%k)",
        Field::Value => "the value (%v)",
        Field::Partition => "the partition (%p)",
        Field::Timestamp => "the timestamp (%T)",
        Field::Headers => "the headers (%h)",
    }
}

fn token(p: &Piece) -> &'static str {
    match p {
        Piece::Topic => "%t (the topic)",
        Piece::Offset => "%o (the offset)",
        Piece::KeyLen => "%K (the key's length)",
        Piece::ValueLen => "%S (the value's length)",
        _ => "this token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000_000;

    #[test]
    fn every_field_from_one_line() {
        let f = InputFormat::parse("%k %p %T %h %v").unwrap();
        let r = f
            .read(
                b"user-1 2 1700000000000 a=1,b=x the value, with spaces",
                NOW,
            )
            .unwrap();
        assert_eq!(
            r,
            Fields {
                key: Some(b"user-1".to_vec()),
                value: b"the value, with spaces".to_vec(),
                partition: Some(2),
                timestamp: Some(1_700_000_000_000),
                headers: vec![("a".into(), b"1".to_vec()), ("b".into(), b"x".to_vec())],
            }
        );
        assert!(f.has_partition());
    }

    #[test]
    fn dates_and_relative_times_and_empty_parts() {
        let f = InputFormat::parse("%T|%k|%h|%v").unwrap();
        let r = f.read(b"2026-12-05T00:00:00Z|||v", NOW).unwrap();
        assert_eq!(r.timestamp, Some(1_796_428_800_000));
        assert_eq!((r.key, r.headers, r.value), (None, vec![], b"v".to_vec()));
        let r = f.read(b"-1h|k||", NOW).unwrap();
        assert_eq!(r.timestamp, Some(NOW as i64 - 3_600_000));
        assert!(!f.has_partition());
    }

    #[test]
    fn text_must_match_and_nothing_may_follow() {
        let f = InputFormat::parse("[%k] %v;").unwrap();
        assert_eq!(f.read(b"[k] v;", NOW).unwrap().value, b"v".to_vec());
        assert!(f
            .read(b"k] v;", NOW)
            .unwrap_err()
            .contains("expected \"[\""));
        assert!(f
            .read(b"[k v;", NOW)
            .unwrap_err()
            .contains("to end the key"));
        assert!(f.read(b"[k] v", NOW).unwrap_err().contains("no \";\""));
        let g = InputFormat::parse("%k=%v").unwrap();
        // The value (last field) takes the rest, separators included.
        assert_eq!(g.read(b"a=b=c", NOW).unwrap().value, b"b=c".to_vec());
    }

    #[test]
    fn bad_fields_and_formats_say_what_is_wrong() {
        let f = InputFormat::parse("%p %T %h %v").unwrap();
        assert!(f
            .read(b"x 1 a=1 v", NOW)
            .unwrap_err()
            .contains("not a partition number"));
        assert!(f
            .read(b"1 soon a=1 v", NOW)
            .unwrap_err()
            .contains("timestamp \"soon\""));
        assert!(f
            .read(b"1 1 novalue v", NOW)
            .unwrap_err()
            .contains("not KEY=VALUE"));
        assert!(InputFormat::parse("%k%v")
            .unwrap_err()
            .contains("two fields in a row"));
        assert!(InputFormat::parse("%o %v")
            .unwrap_err()
            .contains("%o (the offset)"));
        assert!(InputFormat::parse("%v %v").unwrap_err().contains("twice"));
        assert!(InputFormat::parse("%q")
            .unwrap_err()
            .contains("unknown format token"));
    }
}
