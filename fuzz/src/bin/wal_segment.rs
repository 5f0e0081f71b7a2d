//! AFL++ entry point of the `wal_segment` target (see `src/targets/wal_segment.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        streamhouse_fuzz::targets::wal_segment::run(data);
    });
}
