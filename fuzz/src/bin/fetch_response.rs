//! AFL++ entry point of the `fetch_response` target (see `src/targets/fetch_response.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        streamhouse_fuzz::targets::fetch_response::run(data);
    });
}
