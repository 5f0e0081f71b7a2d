//! What a shard does when its WAL fails (no space, an I/O error, no file
//! descriptor): tell the control thread (no partition of the shard is
//! acquired while it is failed, and `/ready` is 503 through the log's
//! `trouble`), reopen the log through recovery every [`REOPEN_EVERY`] so it
//! comes back by itself once the disk works, and, once every segment
//! recovery could read is committed to object storage, give the shard's
//! leases up so other agents continue its partitions after the committed
//! records. Owns nothing but its task; the log, the leases and the uploads
//! stay with `ShardContext` and the control thread.

use std::rc::Rc;
use std::time::{Duration, Instant};

use streamhouse_storage::ReopenError;

use super::context::ShardContext;
use crate::control::inbox::ToControl;
use crate::messages::ShardHealth;

/// How often a failed WAL is reopened: 1 s.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// How long a WAL that cannot even be read back may keep its partitions'
/// leases before they are given up anyway: 60 s. Its unshipped records stay
/// on its disk (a restart ships them if nobody took the partitions since).
pub const UNREADABLE_GRACE: Duration = Duration::from_secs(60);

/// Watches shard `ctx`'s log until the shard drains.
pub async fn watch(ctx: Rc<ShardContext>) {
    let mut failed_since: Option<Instant> = None;
    let mut recovered_once = false;
    let mut released = false;
    let mut last_error = String::new();
    while !ctx.is_draining() {
        glommio::timer::sleep(REOPEN_EVERY).await;
        let Some(why) = ctx.log.failure() else {
            continue;
        };
        let since = *failed_since.get_or_insert_with(|| {
            tracing::error!(shard = ctx.shard, error = %why, "the shard's WAL failed: not ready; reopening it every {REOPEN_EVERY:?}");
            ctx.control.send(ToControl::ShardHealth {
                shard: ctx.shard,
                health: ShardHealth::Failed,
            });
            Instant::now()
        });
        if ctx.is_draining() {
            return;
        }
        match ctx.log.reopen().await {
            Ok(report) => {
                tracing::warn!(
                    shard = ctx.shard,
                    failed_for_ms = since.elapsed().as_millis() as u64,
                    segments = report.segments,
                    batches = report.batches,
                    torn_bytes = report.torn_bytes,
                    "the shard's WAL works again"
                );
                ctx.control.send(ToControl::ShardHealth {
                    shard: ctx.shard,
                    health: ShardHealth::Healthy,
                });
                (failed_since, recovered_once, released) = (None, false, false);
                last_error.clear();
                continue;
            }
            Err(e) => {
                recovered_once |= matches!(e, ReopenError::NoActive(_));
                let e = e.to_string();
                if e != last_error {
                    tracing::warn!(shard = ctx.shard, error = %e, "the shard's WAL cannot be reopened yet");
                    last_error = e;
                }
            }
        }
        let shipped = recovered_once && ctx.log.sealed_segments().is_empty();
        let hopeless = !recovered_once && since.elapsed() >= UNREADABLE_GRACE;
        if !released && (shipped || hopeless) {
            if hopeless {
                tracing::error!(
                    shard = ctx.shard,
                    "the shard's WAL cannot be read back: giving its partitions up; records \
                     not yet in object storage stay on its disk"
                );
            }
            ctx.control
                .send(ToControl::ReleaseShard { shard: ctx.shard });
            released = true;
        }
    }
}
