//! The shard's task registry ([`Tasks`]): every background task of the
//! shard's executor (the control inbox, shipping sealed segments, the WAL
//! watch, the drain watcher, each connection, each hand-over) is spawned
//! here under a name, known while it runs, and stopped here when the shard
//! ends. A task leaves the registry however it ends (finished, stopped or
//! dropped with the executor). Request streams are not registered: each is
//! counted by its connection, which waits for them on drain. Owns the
//! tasks' handles only; must not hold anything a task needs to finish.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};

use futures::future::{AbortHandle, Abortable};

/// The shard's running background tasks, by id.
#[derive(Default)]
pub struct Tasks {
    running: RefCell<BTreeMap<u64, Running>>,
    next_id: RefCell<u64>,
}

struct Running {
    name: &'static str,
    abort: AbortHandle,
}

/// Removes a task from the registry when the task ends or is dropped.
struct Registered {
    tasks: Weak<Tasks>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.upgrade() {
            tasks.running.borrow_mut().remove(&self.id);
        }
    }
}

impl Tasks {
    /// Runs `task` on the current (glommio) executor under `name` until it
    /// finishes or [`stop_all`](Self::stop_all) stops it.
    pub fn spawn(self: &Rc<Self>, name: &'static str, task: impl Future<Output = ()> + 'static) {
        let (abort, registration) = AbortHandle::new_pair();
        let id = {
            let mut next = self.next_id.borrow_mut();
            *next += 1;
            *next
        };
        self.running
            .borrow_mut()
            .insert(id, Running { name, abort });
        let registered = Registered {
            tasks: Rc::downgrade(self),
            id,
        };
        glommio::spawn_local(async move {
            let _registered = registered;
            let _ = Abortable::new(task, registration).await;
        })
        .detach();
    }

    /// How many tasks named `name` run now.
    pub fn count(&self, name: &str) -> usize {
        self.running
            .borrow()
            .values()
            .filter(|r| r.name == name)
            .count()
    }

    /// The running tasks' names with how many of each run, by name.
    pub fn running(&self) -> Vec<(&'static str, usize)> {
        let mut by_name: BTreeMap<&'static str, usize> = BTreeMap::new();
        for r in self.running.borrow().values() {
            *by_name.entry(r.name).or_default() += 1;
        }
        by_name.into_iter().collect()
    }

    /// Stops every task still running at its next await point; returns
    /// what was running, by name.
    pub fn stop_all(&self) -> Vec<(&'static str, usize)> {
        let left = self.running();
        for r in self.running.borrow().values() {
            r.abort.abort();
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use glommio::LocalExecutorBuilder;

    use super::*;

    #[test]
    fn tasks_are_known_while_they_run_and_stopped_through_the_registry() {
        let ex = LocalExecutorBuilder::default().make();
        let Ok(ex) = ex else {
            panic!("cannot start a glommio executor");
        };
        ex.run(async {
            let tasks = Rc::new(Tasks::default());
            let finished = Rc::new(Cell::new(0));
            let f = finished.clone();
            tasks.spawn("short", async move {
                f.set(f.get() + 1);
            });
            for _ in 0..2 {
                let f = finished.clone();
                tasks.spawn("forever", async move {
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
}
