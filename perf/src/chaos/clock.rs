//! The wall clocks of chaos agents: each agent runs under libfaketime
//! (Debian's `faketime` package) with its own offset file, so the nemesis
//! starts an agent with a skewed clock or steps a running agent's clock.
//! Only the wall clock moves; the monotonic clock is left alone, as NTP,
//! an operator or a resumed VM leave it. Owns the offset file and the
//! environment that loads the library; knows nothing of processes.

use std::path::{Path, PathBuf};

/// Where libfaketime's thread-safe library is: `path` when given, else
/// Debian's place for it (any architecture). `Err` says what is missing.
pub fn library(path: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = path {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{}: no such file", p.display()))
        };
    }
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            "needs libfaketime (apt-get install faketime, or --libfaketime PATH)".to_string()
        })
}

/// One agent's clock: an offset file libfaketime reads at every call.
#[derive(Debug, Clone)]
pub struct FakeClock {
    file: PathBuf,
    library: PathBuf,
}

impl FakeClock {
    /// A clock on the real time, its offset kept in `file`.
    pub fn new(file: PathBuf, library: PathBuf) -> Result<FakeClock, String> {
        let c = FakeClock { file, library };
        c.set(0)?;
        Ok(c)
    }

    /// Puts the clock `offset_s` seconds from the real time; a running
    /// agent reads it at its next clock call. Written whole (a rename), so
    /// no call reads half an offset.
    pub fn set(&self, offset_s: i64) -> Result<(), String> {
        let tmp = self.file.with_extension("new");
        std::fs::write(&tmp, format!("{offset_s:+}\n"))
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| format!("{}: {e}", self.file.display()))
    }

    /// The environment that puts a process on this clock.
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            ("LD_PRELOAD", self.library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            // Read at every call: libfaketime's cache expires by the faked
            // time, so a step back would otherwise last the whole step.
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
    }
}
