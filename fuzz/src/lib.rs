//! StreamHouse's fuzz targets as plain functions: each takes arbitrary
//! bytes, feeds them to one decoder the agent or the client runs on
//! untrusted input, and checks what must hold of the answer. A panic is a
//! finding. The `src/bin/` programs hand them to AFL++ (`cargo afl`); the
//! tests replay the committed corpus and every past crash through them.
//! Owns no product code: it calls the crates' public decoders, and compiles
//! the agent's pure metastore text module by path (`targets/metastore_text.rs`).

pub mod targets;
