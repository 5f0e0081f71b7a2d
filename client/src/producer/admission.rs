//! The futures `send`, `send_batch` and `send_with_callback` hand back, and
//! what dropping them does to a record still waiting for buffer room (it
//! is withdrawn: see [`super::intake`]). Owns no producer state; touches
//! the intake queue only through [`Inner::withdraw`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::state::Inner;
use crate::error::{Error, Result};
use crate::record::{BatchMetadata, RecordMetadata};

/// A record waiting in the intake queue for buffer room, owned by the
/// future that holds this: dropped before the producer took the record, it
/// withdraws the record.
pub(super) struct Waiting {
    inner: Weak<Inner>,
    id: u64,
    armed: bool,
}

impl Waiting {
    pub(super) fn new(inner: &Arc<Inner>, id: u64) -> Waiting {
        Waiting {
            inner: Arc::downgrade(inner),
            id,
            armed: true,
        }
    }

    /// The record's fate is settled: dropping no longer withdraws anything.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.armed {
            if let Some(inner) = self.inner.upgrade() {
                inner.withdraw(self.id);
            }
        }
    }
}

/// Resolves with the outcome of what was sent: a record
/// ([`SendFuture`]) or a `send_batch` call ([`BatchSendFuture`]).
///
/// # Cancellation
/// Once the producer has taken the record (at once while it has buffer
/// room), dropping the future does not withdraw it: it is sent all the
/// same and counted in the metrics. Dropped while the record still waits
/// for room (the buffer is full: the agent is slower than the sender), it
/// withdraws the record: it is never sent, its memory is freed, and it is
/// counted in `records_withdrawn`.
pub struct AckFuture<T> {
    pub(super) rx: oneshot::Receiver<Result<T>>,
    pub(super) waiting: Option<Waiting>,
}

/// Resolves when a record is acknowledged (or failed).
pub type SendFuture = AckFuture<RecordMetadata>;

/// Resolves when every record of a [`Producer::send_batch`](super::Producer::send_batch)
/// call is acknowledged (or failed).
pub type BatchSendFuture = AckFuture<BatchMetadata>;

impl<T> Future for AckFuture<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => r,
            // The producer's tasks ended without an answer.
            Poll::Ready(Err(_)) => Err(Error::Closed),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(w) = self.waiting.as_mut() {
            w.disarm();
        }
        Poll::Ready(r)
    }
}

/// Resolves once the producer has taken the record of a
/// [`send_with_callback`](super::Producer::send_with_callback) call (at
/// once while it has buffer room), or has failed it (the callback then has
/// the error, e.g. `BufferFull` after `max_block`). The callback is called
/// exactly once unless this future is dropped before it resolved.
///
/// # Cancellation
/// Dropping it before it resolved withdraws the record: it is never sent,
/// the callback is dropped without being called, and the record is counted
/// in `records_withdrawn`. Dropping it after changes nothing.
#[must_use = "the record may still wait for buffer room: await this, or dropping it withdraws the record"]
pub struct Admission {
    pub(super) taken: Option<oneshot::Receiver<()>>,
    pub(super) waiting: Option<Waiting>,
}

impl Future for Admission {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(rx) = self.taken.as_mut() {
            // A dropped sender means the same as a sent one: the record is
            // no longer waiting.
            if Pin::new(rx).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.taken = None;
        }
        if let Some(w) = self.waiting.as_mut() {
            w.disarm();
        }
        Poll::Ready(())
    }
}
