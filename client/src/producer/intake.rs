//! The intake: how a record gets into the producer's buffer. `send` appends
//! at once when it can (metadata cached, buffer room free, nobody waiting
//! ahead); otherwise the record waits, in `send` order, in the intake queue
//! that the intake task serves.
//!
//! Memory: the producer owns a record once it has taken buffer room for it,
//! so `buffer_memory` bounds every record it owns: batched, in flight, or
//! waiting in the queue for its topic's metadata. A record waiting for room
//! is owned by the future `send` returned: dropping that future withdraws
//! it (its memory is freed; see [`super::admission`]). Beyond
//! `buffer_memory`, the queue itself costs [`ENTRY_BYTES`] per waiting
//! record, and at most [`MAX_WITHDRAWN`] withdrawn entries are kept before
//! the queue is compacted. A waiting record fails with `BufferFull` once
//! it waited `max_block` for room.
//!
//! Completions never run under the state lock: a record that fails here is
//! set aside ([`Failed`]) and completed once the lock is let go, since a
//! callback may call `send`. Owns the queue; does not touch batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::delivery::Outcome;
use super::state::{Append, Deferred, Failed, Inner, Item, State};
use crate::error::Error;

/// Bookkeeping bytes per record waiting in the intake queue (the entry;
/// the record's own bytes are its future's).
pub const ENTRY_BYTES: usize = std::mem::size_of::<Deferred>();

// The README says "216 bytes on x86-64": keep the figure there in step.
const _: () = assert!(ENTRY_BYTES <= 256, "an intake entry grew");

/// Withdrawn entries kept in the queue before it is compacted (also at most
/// half the queue).
pub const MAX_WITHDRAWN: usize = 64;

/// Completes records set aside by [`Inner::fail_one`]. Call with no lock held.
pub(super) fn complete_failed(failed: Failed) {
    for (tx, e) in failed {
        tx.complete(Err(e));
    }
}

impl Inner {
    /// Hands an item to the producer. Returns the id under which it waits
    /// for buffer room (owned by the caller's future) when it must, and,
    /// if `tell_taken`, a receiver told once it no longer waits. `largest`
    /// is the key + value + header bytes of its largest record, checked
    /// against `max_record_bytes` as the agent checks it.
    pub(super) fn enqueue(
        &self,
        item: Item,
        size: usize,
        largest: usize,
        tx: Outcome,
        tell_taken: bool,
    ) -> Option<(u64, Option<oneshot::Receiver<()>>)> {
        if self.closed.load(Ordering::Acquire) {
            tx.complete(Err(Error::Closed));
            return None;
        }
        // A record the agent would refuse fails here, alone (in a batch
        // the agent refuses every record with it), and so does one larger
        // than the buffer could ever hold.
        let buffer_limit = self.config.buffer_memory.min(32 << 20);
        let too_large = if largest > self.config.max_record_bytes {
            Some(Error::RecordTooLarge {
                size: largest,
                limit: self.config.max_record_bytes,
            })
        } else if size > buffer_limit {
            Some(Error::RecordTooLarge {
                size,
                limit: buffer_limit,
            })
        } else {
            None
        };
        if let Some(e) = too_large {
            let n = u64::from(tx.records());
            self.counters.records_sent.fetch_add(n, Ordering::Relaxed);
            self.counters.records_failed.fetch_add(n, Ordering::Relaxed);
            tx.complete(Err(e));
            return None;
        }
        let records = tx.records();
        self.counters
            .records_sent
            .fetch_add(u64::from(records), Ordering::Relaxed);
        let mut failed = Failed::new();
        let mut st = self.state.lock();
        st.outstanding += records as usize;
        let waiting = if st.intake.is_empty() {
            match self.try_append(&mut st, item, tx, size, false, &mut failed) {
                Append::Done => None,
                Append::NotNow(item, tx) => {
                    // No metadata yet, or no room: queue it, taking room
                    // now if there is some (then it waits for metadata only).
                    let reserved = self.take_room(size);
                    let waiting = push(&mut st, item, tx, size, reserved, tell_taken);
                    self.wake_intake.notify_one();
                    (!reserved).then_some(waiting)
                }
            }
        } else {
            // Behind others: wait in order, whatever room there is.
            Some(push(&mut st, item, tx, size, false, tell_taken))
        };
        drop(st);
        complete_failed(failed);
        waiting
    }

    /// Takes `size` bytes of buffer room if free right now.
    pub(super) fn take_room(&self, size: usize) -> bool {
        match self.memory.try_acquire_many(size as u32) {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Withdraws record `id` if it still waits for room in the queue (its
    /// future was dropped); a record the producer took is left alone.
    pub(super) fn withdraw(&self, id: u64) {
        let body;
        let head;
        {
            let mut st = self.state.lock();
            let Ok(i) = st.intake.binary_search_by_key(&id, |d| d.id) else {
                return;
            };
            let d = &mut st.intake[i];
            if d.reserved {
                return;
            }
            let Some(b) = d.body.take() else {
                return;
            };
            d.taken = None;
            let records = b.1.records() as usize;
            body = b;
            head = i == 0;
            st.withdrawn += 1;
            st.outstanding -= records;
            if st.outstanding == 0 {
                self.idle.notify_waiters();
            }
            self.counters
                .records_withdrawn
                .fetch_add(records as u64, Ordering::Relaxed);
            if st.withdrawn > MAX_WITHDRAWN && st.withdrawn * 2 > st.intake.len() {
                st.intake.retain(|d| d.body.is_some());
                st.withdrawn = 0;
            }
        }
        // The record and its callback are dropped outside the lock.
        drop(body);
        if head {
            // The intake task may be waiting for room for it.
            self.wake_intake.notify_one();
        }
    }

    /// Counts a record as failed and moves it to `failed`, to be completed
    /// by [`complete_failed`] after the state lock is let go: a callback
    /// (or whatever a future's waker does) must never run under a lock of
    /// the producer, since it may call `send`.
    pub(super) fn fail_one(&self, st: &mut State, tx: Outcome, e: Error, failed: &mut Failed) {
        let records = tx.records();
        self.counters
            .records_failed
            .fetch_add(u64::from(records), Ordering::Relaxed);
        failed.push((tx, e));
        st.outstanding -= records as usize;
        if st.outstanding == 0 {
            self.idle.notify_waiters();
        }
    }
}

/// Queues an item; returns its id and, when it waits for room and
/// `tell_taken`, the receiver told once it no longer waits.
fn push(
    st: &mut State,
    item: Item,
    tx: Outcome,
    size: usize,
    reserved: bool,
    tell_taken: bool,
) -> (u64, Option<oneshot::Receiver<()>>) {
    st.next_intake_id += 1;
    let id = st.next_intake_id;
    // Taken already (room reserved): the caller need not wait.
    let (taken, rx) = if tell_taken && !reserved {
        let (t, r) = oneshot::channel();
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    st.intake.push_back(Deferred {
        id,
        body: Some((item, tx)),
        size,
        enqueued: Instant::now(),
        reserved,
        taken,
    });
    (id, rx)
}

/// What the intake task works on: the head of the queue.
struct Head {
    id: u64,
    topic: String,
    size: usize,
    enqueued: Instant,
    reserved: bool,
}

/// Serves the intake queue in order: waits for metadata and buffer room.
/// Ends once the producer shuts down and the queue is empty.
///
/// # Cancellation
/// Runs as its own task for the producer's life; it is not cancelled.
pub(super) async fn intake_loop(inner: Arc<Inner>) {
    loop {
        let notified = inner.wake_intake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let head = {
            let mut st = inner.state.lock();
            while st.intake.front().is_some_and(|d| d.body.is_none()) {
                st.intake.pop_front();
                st.withdrawn -= 1;
            }
            if st.shutdown && st.intake.is_empty() {
                return;
            }
            st.intake.front().and_then(|d| {
                d.body.as_ref().map(|(item, _)| Head {
                    id: d.id,
                    topic: item.topic().to_owned(),
                    size: d.size,
                    enqueued: d.enqueued,
                    reserved: d.reserved,
                })
            })
        };
        let Some(head) = head else {
            notified.await;
            continue;
        };
        if inner.metadata.topic(&head.topic).is_none() {
            if let Err(e) = inner.metadata.get_or_fetch(&inner.pool, &head.topic).await {
                fail_head(&inner, head.id, e);
                continue;
            }
        }
        if !head.reserved {
            let started = Instant::now();
            let got = tokio::select! {
                r = tokio::time::timeout_at(
                    head.enqueued + inner.config.max_block,
                    inner.memory.acquire_many(head.size as u32),
                ) => Some(r),
                // The head was withdrawn (or the producer shuts down):
                // look again.
                _ = &mut notified => None,
            };
            inner
                .counters
                .blocked_ns
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            match got {
                None => continue,
                Some(Ok(Ok(permit))) => {
                    permit.forget();
                    let mut st = inner.state.lock();
                    let taken = match st.intake.front_mut() {
                        Some(d) if d.id == head.id && d.body.is_some() => {
                            d.reserved = true;
                            d.taken.take()
                        }
                        // Withdrawn meanwhile.
                        _ => {
                            inner.memory.add_permits(head.size);
                            continue;
                        }
                    };
                    drop(st);
                    // Woken outside the lock, like every completion.
                    if let Some(t) = taken {
                        let _ = t.send(());
                    }
                }
                Some(_) => {
                    fail_head(&inner, head.id, Error::BufferFull(inner.config.max_block));
                    continue;
                }
            }
        }
        append_ready(&inner);
    }
}

/// Fails the queue's head if it is still record `id`.
fn fail_head(inner: &Inner, id: u64, e: Error) {
    let mut failed = Failed::new();
    let mut st = inner.state.lock();
    if st.intake.front().is_some_and(|d| d.id == id) {
        if let Some(d) = st.intake.pop_front() {
            if d.reserved {
                inner.memory.add_permits(d.size);
            }
            if let Some((_, tx)) = d.body {
                inner.fail_one(&mut st, tx, e, &mut failed);
            }
        }
    }
    drop(st);
    complete_failed(failed);
}

/// Moves records from the head of the queue into batches while they have
/// room (room is freed a batch at a time: many fit at once) and metadata,
/// under one lock.
fn append_ready(inner: &Inner) {
    let mut failed = Failed::new();
    let mut taken = Vec::new();
    let mut st = inner.state.lock();
    while let Some(d) = st.intake.front_mut() {
        if d.body.is_none() {
            st.intake.pop_front();
            st.withdrawn -= 1;
            continue;
        }
        if !d.reserved {
            let size = d.size;
            if !inner.take_room(size) {
                break;
            }
            d.reserved = true;
            taken.extend(d.taken.take());
        }
        let Some(mut d) = st.intake.pop_front() else {
            break;
        };
        let Some((item, tx)) = d.body.take() else {
            continue;
        };
        if let Append::NotNow(item, tx) =
            inner.try_append(&mut st, item, tx, d.size, true, &mut failed)
        {
            // No metadata for it (yet): it stays at the head, room taken.
            d.body = Some((item, tx));
            st.intake.push_front(d);
            break;
        }
    }
    drop(st);
    for t in taken {
        let _ = t.send(());
    }
    complete_failed(failed);
}
