//! The log's fail points (feature `failpoints`, off in production): where
//! a test can make an I/O step fail as a disk would, each an
//! [`LogError::Io`](super::error::LogError) whose message says it was
//! injected. Names, and what fails:
//!
//! - `wal-write`: a group-commit write (`writer.rs`), before it is issued;
//! - `wal-sync`: its `fdatasync` (`writer.rs`), before it is issued;
//! - `wal-create-segment`: creating the next segment (`segments.rs`);
//! - `wal-recovery-read`: reading a segment at recovery (`recovery.rs`).
//!
//! Without the feature the macro expands to nothing.

/// Returns an injected `LogError::Io` with `context` from the enclosing
/// function when fail point `name` is configured to `return`.
macro_rules! fault {
    ($name:literal, $context:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| Err(super::error::LogError::Io {
            context: $context,
            message: "injected fault (fail point)".into(),
        }));
    };
}

pub(super) use fault;
