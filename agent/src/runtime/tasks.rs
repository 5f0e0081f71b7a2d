//! Task registries ([`TaskRegistry`]), one per thread: the shard's (glommio)
//! and the control thread's (tokio). Every background task of the thread is
//! spawned through its registry under a name, is known while it runs, and
//! is stopped through it when the thread ends. A task leaves the registry
//! however it ends (finished, stopped, or dropped with its runtime).
//! Not registered: a shard's request streams (each counted by its
//! connection, which waits for them on drain), the admin port's connections
//! (counted against `--max-admin-connections` inside the admin port's task)
//! and a PostgreSQL connection's driver (it ends with its client). Owns the
//! tasks' handles only; imports nothing of the crate.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use parking_lot::Mutex;

/// One thread's running background tasks, by id.
#[derive(Default)]
pub struct TaskRegistry {
    running: Mutex<BTreeMap<u64, Running>>,
    next_id: AtomicU64,
}

struct Running {
    name: &'static str,
    abort: AbortHandle,
}

/// Removes a task from its registry when the task ends or is dropped.
struct Registered {
    tasks: Weak<TaskRegistry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.upgrade() {
            tasks.running.lock().remove(&self.id);
        }
    }
}

impl TaskRegistry {
    fn register(
        self: &Arc<Self>,
        name: &'static str,
        task: impl Future<Output = ()>,
    ) -> impl Future<Output = ()> {
        let (abort, registration): (AbortHandle, AbortRegistration) = AbortHandle::new_pair();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.running.lock().insert(id, Running { name, abort });
        let registered = Registered {
            tasks: Arc::downgrade(self),
            id,
        };
        async move {
            let _registered = registered;
            let _ = Abortable::new(task, registration).await;
        }
    }

    /// Runs `task` on the current glommio executor (a shard's) under `name`
    /// until it finishes or the registry stops it.
    pub fn spawn_local(
        self: &Arc<Self>,
        name: &'static str,
        task: impl Future<Output = ()> + 'static,
    ) {
        glommio::spawn_local(self.register(name, task)).detach();
    }

    /// Runs `task` on the current tokio runtime (the control thread's)
    /// under `name` until it finishes or the registry stops it.
    pub fn spawn(
        self: &Arc<Self>,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        tokio::spawn(self.register(name, task));
    }

    /// How many tasks named `name` run now.
    pub fn count(&self, name: &str) -> usize {
        self.running
            .lock()
            .values()
            .filter(|r| r.name == name)
            .count()
    }

    /// The running tasks' names with how many of each run, by name.
    pub fn running(&self) -> Vec<(&'static str, usize)> {
        let mut by_name: BTreeMap<&'static str, usize> = BTreeMap::new();
        for r in self.running.lock().values() {
            *by_name.entry(r.name).or_default() += 1;
        }
        by_name.into_iter().collect()
    }

    /// Stops every task named `name` at its next await point.
    pub fn stop(&self, name: &str) {
        for r in self.running.lock().values().filter(|r| r.name == name) {
            r.abort.abort();
        }
    }

    /// Stops every task still running at its next await point; returns
    /// what was running, by name.
    pub fn stop_all(&self) -> Vec<(&'static str, usize)> {
        let left = self.running();
        for r in self.running.lock().values() {
            r.abort.abort();
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use glommio::LocalExecutorBuilder;

    use super::*;

    #[test]
    fn shard_tasks_are_known_while_they_run_and_stopped_through_the_registry() {
        let Ok(ex) = LocalExecutorBuilder::default().make() else {
            panic!("cannot start a glommio executor");
        };
        ex.run(async {
            let tasks = Arc::new(TaskRegistry::default());
            let finished = Rc::new(Cell::new(0));
            let f = finished.clone();
            tasks.spawn_local("short", async move {
                f.set(f.get() + 1);
            });
            for _ in 0..2 {
                let f = finished.clone();
                tasks.spawn_local("forever", async move {
                    glommio::timer::sleep(Duration::from_secs(3600)).await;
                    f.set(f.get() + 100);
                });
            }
            assert_eq!(tasks.count("forever"), 2);
            glommio::timer::sleep(Duration::from_millis(10)).await;
            assert_eq!(finished.get(), 1);
            assert_eq!(tasks.running(), [("forever", 2)]);
            assert_eq!(tasks.stop_all(), [("forever", 2)]);
            glommio::timer::sleep(Duration::from_millis(10)).await;
            assert!(tasks.running().is_empty(), "a stopped task leaves");
            assert_eq!(finished.get(), 1, "a stopped task does not go on");
        });
    }

    #[tokio::test]
    async fn control_tasks_stop_by_name() {
        let tasks = Arc::new(TaskRegistry::default());
        let woke = Arc::new(AtomicUsize::new(0));
        for name in ["uploader", "request"] {
            let w = woke.clone();
            tasks.spawn(name, async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                w.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(tasks.running(), [("request", 1), ("uploader", 1)]);
        tasks.stop("uploader");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(woke.load(Ordering::Relaxed), 1, "only the request ran on");
        assert!(tasks.running().is_empty());
    }
}
