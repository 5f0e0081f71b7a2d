//! File-descriptor budget of the agent process: raises the soft open-file
//! limit to the hard one, keeps descriptors in reserve for what must never
//! fail for want of one (WAL segments, the data dir, the metadata and
//! object stores, io_uring rings), and lowers the per-shard and admin
//! connection limits when the rest cannot hold them. Decided once at start;
//! owns no sockets.

/// Descriptors kept out of the connection limits: 64 for the process
/// (stores, stdio, signal pipes) plus 32 per shard (io_uring rings, its
/// segments' read and write handles, directory syncs), at most half the
/// open-file limit.
pub fn reserved_descriptors(open_files: u64, shards: usize) -> u64 {
    (64 + 32 * shards as u64).min(open_files / 2)
}

/// Connection limits that fit the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections per shard port.
    pub per_shard: usize,
    /// Connections to the admin port.
    pub admin: usize,
}

/// The connection limits for `open_files` descriptors and `shards` shards,
/// at most `per_shard` and `admin` (the configured ones). The admin port
/// gets at most an eighth of what is not reserved; every limit is at
/// least 1.
pub fn plan(open_files: u64, shards: usize, per_shard: usize, admin: usize) -> ConnectionLimits {
    let free = open_files.saturating_sub(reserved_descriptors(open_files, shards));
    let admin = (admin as u64).min(free / 8).max(1);
    let per_shard = (per_shard as u64)
        .min(free.saturating_sub(admin) / shards.max(1) as u64)
        .max(1);
    ConnectionLimits {
        per_shard: per_shard as usize,
        admin: admin as usize,
    }
}

/// The soft open-file limit; with `raise`, first raised to the hard one (at
/// most 1,048,576), as servers do (the agent binary raises it; an agent
/// embedded in another program leaves that program's limit alone).
pub fn open_file_limit(raise: bool) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let want = lim.rlim_max.min(1 << 20);
        if raise && want > lim.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_fit_the_descriptors_left_after_the_reserve() {
        // Plenty of descriptors: the configured limits stand.
        let p = plan(1 << 20, 2, 1024, 64);
        assert_eq!(
            p,
            ConnectionLimits {
                per_shard: 1024,
                admin: 64
            }
        );
        // ulimit -n 256, two shards: 128 reserved, 16 for admin, 56 per shard.
        let p = plan(256, 2, 1024, 64);
        assert_eq!(
            p,
            ConnectionLimits {
                per_shard: 56,
                admin: 16
            }
        );
        assert!(2 * p.per_shard as u64 + p.admin as u64 + reserved_descriptors(256, 2) <= 256);
        // Absurdly low: still one connection each.
        assert_eq!(
            plan(8, 4, 1024, 64),
            ConnectionLimits {
                per_shard: 1,
                admin: 1
            }
        );
    }
}
