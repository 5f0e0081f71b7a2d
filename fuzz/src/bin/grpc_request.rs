//! AFL++ entry point of the `grpc_request` target (see `src/targets/grpc_request.rs`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        streamhouse_fuzz::targets::grpc_request::run(data);
    });
}
