//! AFL++ entry point of the `metastore_text` target (see `src/targets/metastore_text.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        streamhouse_fuzz::targets::metastore_text::run(data);
    });
}
