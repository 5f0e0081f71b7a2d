//! The topic catalog of one agent: topics, their partition counts and
//! incarnation ids, and the producer-id counter, persisted atomically to
//! `catalog.json` in the data dir. Shared by all shards behind a mutex that
//! only admin calls take; the produce path reads a shard-local copy and only
//! watches [`Catalog::version`]. Must not hold partition data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_NAME: usize = 249;

/// A topic as the catalog knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicEntry {
    /// Incarnation id: a topic deleted and created again gets a new one, so
    /// its old data in the WAL is never mistaken for the new topic's.
    pub id: u64,
    pub partitions: u32,
    /// High watermark per partition, published by the owning shard.
    #[serde(skip)]
    pub high_watermarks: Arc<[AtomicU64]>,
}

impl TopicEntry {
    /// Name of the topic inside the shard logs.
    pub fn log_key(&self, name: &str) -> String {
        format!("{name}#{}", self.id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_topic_id: u64,
    next_producer_id: i64,
    topics: BTreeMap<String, TopicEntry>,
}

/// Catalog errors, each mapping to one gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
    #[error("topic {0} already exists")]
    Exists(String),
    #[error("unknown topic {0}")]
    Unknown(String),
    #[error("catalog I/O on {path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// The agent's topic catalog.
pub struct Catalog {
    path: PathBuf,
    state: Mutex<State>,
    version: AtomicU64,
}

fn zeroed(n: u32) -> Arc<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// Checks a topic name: 1-249 bytes of `[A-Za-z0-9._-]`.
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    if name.is_empty() {
        return Err(CatalogError::Invalid("topic name is empty".into()));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Err(CatalogError::Invalid(format!(
            "topic name is {} bytes; the limit is {MAX_TOPIC_NAME}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(CatalogError::Invalid(format!(
            "topic name {name:?} contains {c:?}; use letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

impl Catalog {
    /// Opens `catalog.json` in `data_dir`, creating an empty catalog if absent.
    pub fn open(data_dir: &Path) -> Result<Catalog, CatalogError> {
        let path = data_dir.join("catalog.json");
        let io = |e: std::io::Error| CatalogError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut state: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CatalogError::Io {
                path: path.clone(),
                message: format!("not a valid catalog: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                next_topic_id: 1,
                next_producer_id: 1,
                topics: BTreeMap::new(),
            },
            Err(e) => return Err(io(e)),
        };
        for t in state.topics.values_mut() {
            t.high_watermarks = zeroed(t.partitions);
        }
        Ok(Catalog {
            path,
            state: Mutex::new(state),
            version: AtomicU64::new(1),
        })
    }

    /// Changes whenever topics are created or deleted.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self, name: &str) -> Option<TopicEntry> {
        self.state.lock().topics.get(name).cloned()
    }

    pub fn list(&self) -> Vec<(String, TopicEntry)> {
        self.state
            .lock()
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Creates a topic; persisted before it returns.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<TopicEntry, CatalogError> {
        validate_topic_name(name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(CatalogError::Invalid(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
            )));
        }
        let mut st = self.state.lock();
        if st.topics.contains_key(name) {
            return Err(CatalogError::Exists(name.into()));
        }
        let entry = TopicEntry {
            id: st.next_topic_id,
            partitions,
            high_watermarks: zeroed(partitions),
        };
        st.next_topic_id += 1;
        st.topics.insert(name.into(), entry.clone());
        if let Err(e) = self.persist(&st) {
            st.topics.remove(name);
            return Err(e);
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(entry)
    }

    /// Deletes a topic; persisted before it returns.
    pub fn delete_topic(&self, name: &str) -> Result<(), CatalogError> {
        let mut st = self.state.lock();
        let Some(old) = st.topics.remove(name) else {
            return Err(CatalogError::Unknown(name.into()));
        };
        if let Err(e) = self.persist(&st) {
            st.topics.insert(name.into(), old);
            return Err(e);
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Allocates a new idempotent-producer id (never reused, persisted).
    pub fn next_producer_id(&self) -> Result<i64, CatalogError> {
        let mut st = self.state.lock();
        let id = st.next_producer_id;
        st.next_producer_id += 1;
        if let Err(e) = self.persist(&st) {
            st.next_producer_id -= 1;
            return Err(e);
        }
        Ok(id)
    }

    /// Writes the catalog with write-to-temp, fsync, rename, fsync-directory.
    fn persist(&self, st: &State) -> Result<(), CatalogError> {
        let io = |e: std::io::Error| CatalogError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(st).map_err(|e| CatalogError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_and_get_new_ids_when_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let v0 = c.version();
        let a = c.create_topic("orders", 3).unwrap();
        assert!(c.version() > v0);
        assert!(matches!(
            c.create_topic("orders", 1),
            Err(CatalogError::Exists(_))
        ));
        assert!(matches!(
            c.create_topic("", 1),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            c.create_topic("a b", 1),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            c.create_topic("x", 0),
            Err(CatalogError::Invalid(_))
        ));
        let p1 = c.next_producer_id().unwrap();
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.get("orders").unwrap().partitions, 3);
        assert!(c.next_producer_id().unwrap() > p1);
        c.delete_topic("orders").unwrap();
        let b = c.create_topic("orders", 2).unwrap();
        assert_ne!(a.log_key("orders"), b.log_key("orders"));
        assert!(matches!(
            c.delete_topic("nope"),
            Err(CatalogError::Unknown(_))
        ));
    }
}
