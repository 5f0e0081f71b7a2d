//! Simulated power loss (feature `failpoints`, for tests): the log reports
//! where each segment's data writes end and where its completed syncs end;
//! [`power_loss`] then rewrites a stopped log's files as a disk might hold
//! them after losing power: everything synced kept, the unsynced written
//! bytes dropped, kept, or torn sector by sector (each 512-byte sector
//! old, new or, where nothing was synced before, garbage), nothing beyond
//! the last write touched. Owns no log state; the log calls [`wrote`] and
//! [`synced`] and nothing else. Tests: `tests/failpoints.rs`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The smallest unit a disk writes whole (a sector), bytes.
pub const SECTOR: u64 = 512;

/// What the log wrote to one segment file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    /// End of the data of the last write issued (bytes from the start).
    pub written: u64,
    /// End of the data of the last write whose `fdatasync` completed.
    pub synced: u64,
}

static FILES: Mutex<BTreeMap<PathBuf, Extent>> = Mutex::new(BTreeMap::new());

fn files() -> MutexGuard<'static, BTreeMap<PathBuf, Extent>> {
    FILES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A data write to `path` ending at `end` was issued.
pub fn wrote(path: &Path, end: u64) {
    let mut f = files();
    let e = f.entry(path.to_path_buf()).or_default();
    e.written = e.written.max(end);
}

/// A sync covering the writes to `path` up to `end` completed.
pub fn synced(path: &Path, end: u64) {
    let mut f = files();
    let e = f.entry(path.to_path_buf()).or_default();
    e.synced = e.synced.max(end);
    e.written = e.written.max(end);
}

/// Forgets every file under `dir` and returns what was known of them.
pub fn take(dir: &Path) -> BTreeMap<PathBuf, Extent> {
    let mut f = files();
    let keys: Vec<PathBuf> = f.keys().filter(|p| p.starts_with(dir)).cloned().collect();
    keys.into_iter()
        .filter_map(|k| f.remove(&k).map(|e| (k, e)))
        .collect()
}

/// What happens to a file's unsynced bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// None reached the disk.
    Dropped,
    /// All did (the sync would have succeeded).
    Kept,
    /// Each sector independently old, new or garbage.
    Torn,
}

/// Source of the choices a power loss makes (seeded by the test).
pub trait Chooser {
    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64;
}

/// Rewrites the files of a stopped log under `dir` as `extents` says they
/// were written and synced, losing the unsynced bytes as `choose` decides
/// per file. Returns, per file, what was done.
pub fn power_loss(
    extents: &BTreeMap<PathBuf, Extent>,
    choose: &mut dyn Chooser,
) -> std::io::Result<Vec<(PathBuf, Loss)>> {
    let mut done = Vec::new();
    for (path, e) in extents {
        if e.written <= e.synced {
            continue;
        }
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        else {
            continue;
        };
        let loss = match choose.below(3) {
            0 => Loss::Dropped,
            1 => Loss::Kept,
            _ => Loss::Torn,
        };
        // Bytes after the last write were never written: they stay. A
        // write issued but not carried out before the stop left nothing.
        let len = file.metadata()?.len();
        let written = e.written.min(len);
        if written <= e.synced {
            continue;
        }
        let mut new = vec![0u8; (written - e.synced) as usize];
        file.seek(SeekFrom::Start(e.synced))?;
        file.read_exact(&mut new)?;
        let mut image = new.clone();
        match loss {
            Loss::Kept => {}
            Loss::Dropped => image.fill(0),
            Loss::Torn => {
                // Sector by sector from the sector holding `synced`; the
                // synced prefix of that sector is never lost.
                let mut pos = e.synced;
                while pos < written {
                    let sector_end = ((pos / SECTOR) + 1) * SECTOR;
                    let end = sector_end.min(written);
                    let (a, b) = ((pos - e.synced) as usize, (end - e.synced) as usize);
                    let whole = pos % SECTOR == 0;
                    match choose.below(if whole { 3 } else { 2 }) {
                        0 => image[a..b].fill(0),
                        1 => {}
                        _ => {
                            for byte in &mut image[a..b] {
                                *byte = choose.below(256) as u8;
                            }
                        }
                    }
                    pos = end;
                }
            }
        }
        file.seek(SeekFrom::Start(e.synced))?;
        file.write_all(&image)?;
        file.sync_all()?;
        done.push((path.clone(), loss));
    }
    Ok(done)
}
