//! The chunk index as the metadata store holds it, read straight from its
//! tables (SQLite file or PostgreSQL), not through an agent: per
//! partition, committed ranges must start at offset 0 and follow each
//! other without overlap or gap. Owns that read and that rule only.

use std::collections::BTreeMap;

/// A `chunk_ranges` row: topic, part, base, end, chunk key, epoch.
type Row = (String, i64, i64, i64, String, i64);

/// One committed range: `[base, end)` of a partition, in `chunk`.
#[derive(Debug, Clone)]
pub struct Range {
    pub base: u64,
    pub end: u64,
    pub chunk: String,
    pub epoch: u64,
}

/// A break in a partition's chunk index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexFault {
    /// `name#id` as stored.
    pub topic: String,
    pub partition: u32,
    /// `overlap`, `gap` or `epoch went backwards`.
    pub what: String,
    pub detail: String,
}

/// Reads every range of the topics whose stored name starts with `prefix`.
pub async fn read(url: &str, prefix: &str) -> Result<BTreeMap<(String, u32), Vec<Range>>, String> {
    let like = format!("{prefix}%");
    let mut out: BTreeMap<(String, u32), Vec<Range>> = BTreeMap::new();
    const Q: &str = "SELECT topic, part, base_offset, end_offset, chunk_key, epoch FROM chunk_ranges WHERE topic LIKE ";
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.to_string();
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<Row>, String> {
            let c = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| format!("{path}: {e}"))?;
            c.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            let mut st = c
                .prepare(&format!("{Q}?1 ORDER BY topic, part, base_offset"))
                .map_err(|e| e.to_string())?;
            let rows = st
                .query_map([&like], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            Ok(rows)
        })
        .await
        .map_err(|e| e.to_string())??;
        for (t, p, b, e, k, ep) in rows {
            push(&mut out, t, p, b, e, k, ep);
        }
    } else {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("metadata store: {e}"))?;
        let task = tokio::spawn(conn);
        let rows = client
            .query(
                &format!("{Q}$1 ORDER BY topic, part, base_offset"),
                &[&like],
            )
            .await
            .map_err(|e| format!("reading chunk_ranges: {e}"))?;
        for r in rows {
            push(
                &mut out,
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
            );
        }
        drop(client);
        task.abort();
    }
    Ok(out)
}

fn push(
    out: &mut BTreeMap<(String, u32), Vec<Range>>,
    topic: String,
    part: i64,
    base: i64,
    end: i64,
    chunk: String,
    epoch: i64,
) {
    out.entry((topic, part.max(0) as u32))
        .or_default()
        .push(Range {
            base: base.max(0) as u64,
            end: end.max(0) as u64,
            chunk,
            epoch: epoch.max(0) as u64,
        });
}

/// Every overlap, gap and backwards epoch in `index` (ranges sorted by
/// base offset per partition).
pub fn check(index: &BTreeMap<(String, u32), Vec<Range>>) -> Vec<IndexFault> {
    let mut faults = Vec::new();
    for ((topic, partition), ranges) in index {
        let mut end = 0u64;
        let mut epoch = 0u64;
        for r in ranges {
            let fault = |what: &str, detail: String| IndexFault {
                topic: topic.clone(),
                partition: *partition,
                what: what.into(),
                detail,
            };
            if r.base < end {
                faults.push(fault(
                    "overlap",
                    format!(
                        "[{}, {}) in {} starts below the end {end} of the range before it",
                        r.base, r.end, r.chunk
                    ),
                ));
            } else if r.base > end {
                faults.push(fault(
                    "gap",
                    format!(
                        "offsets [{end}, {}) are in no range; the next is in {}",
                        r.base, r.chunk
                    ),
                ));
            }
            if r.epoch < epoch {
                faults.push(fault(
                    "epoch went backwards",
                    format!(
                        "[{}, {}) committed at epoch {} after a range of epoch {epoch}",
                        r.base, r.end, r.epoch
                    ),
                ));
            }
            end = end.max(r.end);
            epoch = epoch.max(r.epoch);
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, end: u64, epoch: u64) -> Range {
        Range {
            base,
            end,
            chunk: format!("c{base}"),
            epoch,
        }
    }

    #[test]
    fn contiguous_ranges_pass_and_every_break_is_named() {
        let mut idx = BTreeMap::new();
        idx.insert(("a#1".to_string(), 0), vec![r(0, 10, 1), r(10, 20, 2)]);
        assert!(check(&idx).is_empty());
        idx.insert(
            ("a#1".to_string(), 1),
            vec![r(0, 10, 2), r(5, 20, 2), r(25, 30, 1)],
        );
        let what: Vec<String> = check(&idx).into_iter().map(|f| f.what).collect();
        assert_eq!(what, ["overlap", "gap", "epoch went backwards"]);
        idx.clear();
        idx.insert(("a#1".to_string(), 0), vec![r(3, 10, 1)]);
        assert_eq!(check(&idx)[0].what, "gap");
    }
}
