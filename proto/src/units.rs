//! Sizes and durations as people write them, shared by the agent's flags,
//! environment variables and `--config` keys and by streamctl's flags: a
//! plain number in the flag's unit (bytes for `--*-bytes`, milliseconds
//! for `--*-ms`), or a number with a unit —
//! `64MiB`, `512KiB`, `1GB`, `4096B`; `5s`, `100ms`, `2m`, `1h`, `7d`.
//! `-1` stays `-1` where a flag gives it a meaning (no limit). Parsing
//! only; what a value means is the flag's.

/// A size in bytes: a plain number, or one with B, KB/MB/GB/TB (powers
/// of 1000) or KiB/MiB/GiB/TiB (powers of 1024); case-insensitive.
pub fn bytes<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let v = with_unit(s, "bytes", |unit| {
        Some(match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => return None,
        })
    })?;
    T::try_from(v).map_err(|_| format!("{s}: too large"))
}

/// A duration in milliseconds: a plain number, or one with ms, s, m, h
/// or d.
pub fn millis<T: TryFrom<u64>>(s: &str) -> Result<T, String> {
    let v = with_unit(s, "milliseconds", |unit| {
        Some(match unit {
            "" | "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        })
    })?;
    T::try_from(v).map_err(|_| format!("{s}: too large"))
}

/// [`bytes`] that also takes `-1` (no limit).
pub fn bytes_or_unlimited(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    bytes::<i64>(s)
}

/// [`millis`] that also takes `-1` (forever).
pub fn millis_or_forever(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    millis::<i64>(s)
}

/// `NUMBER[UNIT]` with `factor(UNIT)`; the error names the units.
fn with_unit(s: &str, what: &str, factor: impl Fn(&str) -> Option<u64>) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let n: u64 = number.parse().map_err(|_| {
        format!("{s:?} is not a number of {what} (a number, optionally with a unit such as 64MiB or 5s)")
    })?;
    let f = factor(unit).ok_or_else(|| {
        let units = if what == "bytes" {
            "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
        } else {
            "ms, s, m, h, d"
        };
        format!("{s:?}: unknown unit {unit:?} (use {units})")
    })?;
    n.checked_mul(f).ok_or_else(|| format!("{s}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(bytes::<u64>("67108864"), Ok(64 << 20));
        assert_eq!(bytes::<u64>("64MiB"), Ok(64 << 20));
        assert_eq!(bytes::<u64>("64 mib"), Ok(64 << 20));
        assert_eq!(bytes::<u64>("1GB"), Ok(1_000_000_000));
        assert_eq!(bytes::<usize>("512KiB"), Ok(512 << 10));
        assert_eq!(bytes::<u64>("4096B"), Ok(4096));
        assert!(bytes::<u64>("64XB").unwrap_err().contains("unknown unit"));
        // `m` is minutes among durations; sizes spell their units out.
        assert!(bytes::<u64>("64m").unwrap_err().contains("unknown unit"));
        assert!(bytes::<u64>("MiB").unwrap_err().contains("not a number"));
        assert!(bytes::<u64>("99999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert!(bytes::<u32>("8GiB").unwrap_err().contains("too large"));
        assert_eq!(bytes_or_unlimited("-1"), Ok(-1));
        assert_eq!(bytes_or_unlimited("10GiB"), Ok(10 << 30));
    }

    #[test]
    fn durations_with_and_without_units() {
        assert_eq!(millis::<u64>("500"), Ok(500));
        assert_eq!(millis::<u64>("100ms"), Ok(100));
        assert_eq!(millis::<u64>("5s"), Ok(5_000));
        assert_eq!(millis::<u64>("2m"), Ok(120_000));
        assert_eq!(millis::<u64>("1h"), Ok(3_600_000));
        assert_eq!(millis::<i64>("7d"), Ok(604_800_000));
        assert!(millis::<u64>("5x").unwrap_err().contains("unknown unit"));
        assert!(millis::<u64>("-5s").unwrap_err().contains("not a number"));
        assert_eq!(millis_or_forever("-1"), Ok(-1));
    }
}
