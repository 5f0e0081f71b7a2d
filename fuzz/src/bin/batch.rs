//! AFL++ entry point of the `batch` target (see `src/targets/batch.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        streamhouse_fuzz::targets::batch::run(data);
    });
}
