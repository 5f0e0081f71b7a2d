//! A fake wall clock for agent processes (Debian's libfaketime, which
//! scripts/test.sh installs): the offset from the real time is read from a
//! file, so a test steps the wall clock of a running agent, or starts one
//! an hour ahead. The monotonic clock is left alone, as a clock step (NTP,
//! an operator, a VM resumed) leaves it.

use std::path::PathBuf;
use std::time::Duration;

/// How long a test waits after [`FakeClock::set`] before relying on the
/// new time (libfaketime reads the file at every call; this covers calls
/// under way).
pub const SETTLES: Duration = Duration::from_millis(200);

/// One offset file, shared by the agents given its [`env`](FakeClock::env).
pub struct FakeClock {
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where libfaketime's thread-safe library is: `STREAMHOUSE_TEST_LIBFAKETIME`
/// or Debian's place for it (any architecture).
fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("STREAMHOUSE_TEST_LIBFAKETIME") {
        return PathBuf::from(p);
    }
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("libfaketime is not installed (apt-get install faketime; scripts/test.sh does it)")
    })
}

impl FakeClock {
    /// A clock `offset` from the real one: libfaketime's relative form,
    /// seconds with an optional unit (`+0`, `-3600`, `+1h`).
    pub fn new(offset: &str) -> FakeClock {
        let dir = tempfile::tempdir_in(crate::common::target_tmp()).unwrap();
        let c = FakeClock {
            file: dir.path().join("faketime"),
            _dir: dir,
        };
        c.set(offset);
        c
    }

    /// Moves the clock to `offset` from the real time; agents read it
    /// at their next clock call.
    pub fn set(&self, offset: &str) {
        let tmp = self.file.with_extension("new");
        std::fs::write(&tmp, format!("{offset}\n")).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    /// The environment that puts a process on this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", library().display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            // Read at every call: a cached offset expires by the faked
            // time, so after a step back it would stay for the whole step.
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
