//! One module per fuzz target; [`ALL`] names them for the replay tests and
//! the run script.

pub mod batch;
pub mod fetch_response;
pub mod grpc_request;
pub mod metastore_text;
pub mod wal_segment;

/// A target's entry point: one input, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its `src/bin/` program and corpus
/// folder).
pub const ALL: [(&str, Target); 5] = [
    ("batch", batch::run),
    ("wal_segment", wal_segment::run),
    ("grpc_request", grpc_request::run),
    ("metastore_text", metastore_text::run),
    ("fetch_response", fetch_response::run),
];

/// A small cursor over fuzz input: reads run out into zeros, never panic.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
