//! The data dir's WAL layout: how many shards wrote it (`data_dir/SHARDS`).
//! A partition's WAL lives in the directory of the shard it hashes to, so
//! the same data dir read with another shard count would look for each
//! partition in the wrong place. `lifecycle` uses this record to ship the
//! old layout's WAL to object storage before the new count serves. Owns
//! the record file only; never reads or writes a WAL.

use std::path::Path;

const FILE: &str = "SHARDS";

/// The shard count the data dir was last served with: from `SHARDS`, or
/// for a data dir written before the record existed, one more than the
/// highest `shard-N` directory. `None` for a data dir with no WAL yet.
pub fn recorded(data_dir: &Path) -> Result<Option<usize>, String> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            return s.trim().parse::<usize>().map(Some).map_err(|_| {
                format!(
                    "{} holds {:?}, not a shard count: write the shard count the data dir \
                     was last served with into it",
                    path.display(),
                    s.trim()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let entries = std::fs::read_dir(data_dir)
        .map_err(|e| format!("cannot list {}: {e}", data_dir.display()))?;
    let mut highest = None;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", data_dir.display()))?;
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(i) = index {
            highest = highest.max(Some(i));
        }
    }
    Ok(highest.map(|i| i + 1))
}

/// Records that the data dir is served with `shards` shards (written to a
/// temporary file, synced, renamed, directory synced).
pub fn record(data_dir: &Path, shards: usize) -> Result<(), String> {
    let path = data_dir.join(FILE);
    let tmp = data_dir.join("SHARDS.tmp");
    std::fs::write(&tmp, format!("{shards}\n"))
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .and_then(|_| std::fs::File::open(data_dir)?.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Removes the WAL directories of shards `from..` (after the old layout was
/// shipped, they hold no data; a later start with more shards gives such a
/// shard a fresh log id, so chunk object names never repeat).
pub fn remove_shards_from(data_dir: &Path, from: usize, to: usize) -> Result<(), String> {
    for i in from..to {
        let dir = data_dir.join(format!("shard-{i}"));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_wins_and_old_dirs_are_counted_without_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recorded(dir.path()).unwrap(), None, "a new data dir");
        std::fs::create_dir(dir.path().join("shard-0")).unwrap();
        std::fs::create_dir(dir.path().join("shard-2")).unwrap();
        std::fs::create_dir(dir.path().join("objects")).unwrap();
        assert_eq!(recorded(dir.path()).unwrap(), Some(3));
        record(dir.path(), 1).unwrap();
        assert_eq!(recorded(dir.path()).unwrap(), Some(1));
        std::fs::write(dir.path().join(FILE), "two").unwrap();
        let e = recorded(dir.path()).unwrap_err();
        assert!(e.contains("not a shard count"), "{e}");
        remove_shards_from(dir.path(), 1, 4).unwrap();
        assert!(dir.path().join("shard-0").exists());
        assert!(!dir.path().join("shard-2").exists());
    }
}
