//! What callers hand the producer and what they get back: a record for
//! [`send`](crate::Producer::send), the records of one
//! [`send_batch`](crate::Producer::send_batch) call, and where they were
//! stored. Plain data: no I/O, no producer state.

use std::sync::Arc;

use bytes::Bytes;

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Topic of the record.
    pub topic: String,
    /// Explicit partition; `None` = by key, or sticky for keyless records.
    pub partition: Option<u32>,
    /// Key: records with equal keys go to the same partition.
    pub key: Option<Bytes>,
    /// Value bytes.
    pub value: Bytes,
    /// Milliseconds since the Unix epoch; `None` = the producer's clock.
    pub timestamp: Option<i64>,
    /// Headers, kept in order.
    pub headers: Vec<(String, Bytes)>,
}

impl ProducerRecord {
    /// A keyless record with the current time as timestamp.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: value.into(),
            ..Default::default()
        }
    }
    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// Sets the timestamp, ms since the Unix epoch.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic of the record (shared by the records of one request: no
    /// allocation per acknowledged record).
    pub topic: Arc<str>,
    /// Partition the record was stored in.
    pub partition: u32,
    /// The record's offset in its partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// One record of a [`send_batch`](crate::Producer::send_batch) call: the
/// call names topic and partition, so a record is its value, optional key,
/// timestamp and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRecord {
    /// Key, stored with the record (it does not choose the partition here).
    pub key: Option<Bytes>,
    /// Value bytes.
    pub value: Bytes,
    /// Milliseconds since the Unix epoch; `None` = the producer's clock.
    pub timestamp: Option<i64>,
    /// Headers, kept in order.
    pub headers: Vec<(String, Bytes)>,
}

impl BatchRecord {
    /// A keyless record with the current time as timestamp.
    pub fn new(value: impl Into<Bytes>) -> Self {
        BatchRecord {
            value: value.into(),
            ..Default::default()
        }
    }
    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the timestamp, ms since the Unix epoch.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }
}

impl From<Bytes> for BatchRecord {
    fn from(value: Bytes) -> Self {
        BatchRecord::new(value)
    }
}

impl From<Vec<u8>> for BatchRecord {
    fn from(value: Vec<u8>) -> Self {
        BatchRecord::new(value)
    }
}

impl From<&'static [u8]> for BatchRecord {
    fn from(value: &'static [u8]) -> Self {
        BatchRecord::new(value)
    }
}

impl From<String> for BatchRecord {
    fn from(value: String) -> Self {
        BatchRecord::new(value)
    }
}

impl From<&'static str> for BatchRecord {
    fn from(value: &'static str) -> Self {
        BatchRecord::new(value)
    }
}

/// Where the records of one acknowledged
/// [`send_batch`](crate::Producer::send_batch) call were stored: offsets
/// `base_offset .. base_offset + record_count`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Topic of the records.
    pub topic: Arc<str>,
    /// Partition they were stored in.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// How many records the call sent.
    pub record_count: u32,
    /// Timestamp of the first record, ms since the Unix epoch.
    pub timestamp: i64,
}
