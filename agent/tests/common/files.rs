//! What an agent wrote to disk, for the tests that look at it: every file
//! under a directory, a batch found only in the local object store, a byte
//! changed in a chunk object. Starts no process.
// Not every test crate that includes the harness uses each helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every file under `dir`, recursively (none if it cannot be read).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits (up to 20 s) until the batch holding `needle` is only in the
/// agent's local object store (uploaded, and the shard's copy dropped);
/// returns the object's path.
pub async fn only_in_objects(data_dir: &Path, shard: usize, needle: &[u8]) -> PathBuf {
    let holds = |p: &PathBuf| {
        std::fs::read(p)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let shard_dir = data_dir.join(format!("shard-{shard}"));
    loop {
        let found = files_under(&data_dir.join("objects"))
            .into_iter()
            .find(holds);
        let local = files_under(&shard_dir).iter().any(holds);
        match found {
            Some(p) if !local => return p,
            _ => assert!(
                Instant::now() < deadline,
                "the batch never moved to the object store alone"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`only_in_objects`], then overwrites the first byte of `needle` in that
/// chunk object with `with`, synced. Returns the object's path.
pub async fn flip_in_object(data_dir: &Path, shard: usize, needle: &[u8], with: u8) -> PathBuf {
    let object = only_in_objects(data_dir, shard, needle).await;
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] = with;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&object)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &bytes[at..=at], at as u64).unwrap();
    f.sync_all().unwrap();
    object
}
