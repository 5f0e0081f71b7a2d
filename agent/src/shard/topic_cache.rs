//! The shard's topic cache ([`TopicCache`]): the topics of the catalog as
//! one shard last loaded them, each behind an `Rc` so the produce path never
//! touches a cross-core reference count, and the catalog version they came
//! from. Holds data only: reloading it and the routing check are in
//! `topics`; it must not touch the log or the leases.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::topics::catalog::TopicEntry;

/// A topic as one shard sees it.
pub(super) struct LocalTopic {
    /// The topic's key in the log and the lease table (`name#incarnation`).
    pub(super) key: Rc<str>,
    pub(super) entry: TopicEntry,
}

/// The topics one shard knows, by name.
#[derive(Default)]
pub(super) struct TopicCache {
    by_name: RefCell<HashMap<String, Rc<LocalTopic>>>,
    /// The catalog version `by_name` was loaded from; 0 before the first load.
    version: Cell<u64>,
}

impl TopicCache {
    /// The catalog version the cache holds.
    pub(super) fn version(&self) -> u64 {
        self.version.get()
    }

    pub(super) fn get(&self, name: &str) -> Option<Rc<LocalTopic>> {
        self.by_name.borrow().get(name).cloned()
    }

    /// The topic whose log key is `key`, if the cache holds it.
    pub(super) fn by_key(&self, key: &str) -> Option<Rc<LocalTopic>> {
        self.by_name
            .borrow()
            .values()
            .find(|t| &*t.key == key)
            .cloned()
    }

    /// Replaces the whole cache with `fresh`, loaded from catalog version
    /// `version`; returns the topics that were dropped or whose incarnation
    /// changed (their log and lease state is the caller's to remove).
    pub(super) fn replace(
        &self,
        fresh: HashMap<String, Rc<LocalTopic>>,
        version: u64,
    ) -> Vec<Rc<LocalTopic>> {
        let old = std::mem::replace(&mut *self.by_name.borrow_mut(), fresh);
        self.version.set(version);
        let now = self.by_name.borrow();
        old.into_iter()
            .filter(|(name, t)| now.get(name).map(|n| &*n.key) != Some(&*t.key))
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metastore::TopicRow;
    use crate::topics::catalog::Catalog;

    fn topic(catalog: &Catalog, name: &str, id: u64) -> (String, Rc<LocalTopic>) {
        let entry = catalog.insert(&TopicRow {
            name: name.into(),
            id,
            partitions: 1,
            config: Default::default(),
        });
        let key: Rc<str> = entry.key(name).as_str().into();
        (name.to_owned(), Rc::new(LocalTopic { key, entry }))
    }

    #[test]
    fn replace_reports_dropped_and_recreated_topics_only() {
        let catalog = Catalog::default();
        let cache = TopicCache::default();
        assert_eq!(cache.version(), 0);
        let first: HashMap<_, _> = [
            topic(&catalog, "kept", 1),
            topic(&catalog, "dropped", 2),
            topic(&catalog, "recreated", 3),
        ]
        .into_iter()
        .collect();
        assert!(cache.replace(first, 1).is_empty());
        let second: HashMap<_, _> = [topic(&catalog, "kept", 1), topic(&catalog, "recreated", 4)]
            .into_iter()
            .collect();
        let mut gone: Vec<String> = cache
            .replace(second, 2)
            .iter()
            .map(|t| t.key.to_string())
            .collect();
        gone.sort();
        assert_eq!(gone, ["dropped#2", "recreated#3"]);
        assert_eq!(cache.version(), 2);
        assert_eq!(
            cache.get("recreated").map(|t| t.key.to_string()).as_deref(),
            Some("recreated#4")
        );
        assert!(cache.by_key("dropped#2").is_none());
        assert!(cache.by_key("kept#1").is_some());
    }
}
