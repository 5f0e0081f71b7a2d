//! A named OS thread running one future on its own current-thread tokio
//! runtime: the control thread and the lease-renewal thread are both this.
//! Owns nothing but the thread; what runs on it is the caller's.

use std::future::Future;
use std::thread::JoinHandle;

/// Starts thread `name` and runs `body()` on a fresh current-thread tokio
/// runtime (timers and I/O enabled) until it completes. If the runtime
/// cannot be built, the error is logged and the thread ends without calling
/// `body`: anything `body` owns (a start-up channel, say) is dropped, which
/// is how a waiting caller learns of it.
pub(super) fn spawn<F, Fut>(name: &'static str, body: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    std::thread::Builder::new().name(name.into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(body()),
            Err(e) => tracing::error!(thread = name, error = %e, "cannot start the thread's tokio runtime"),
        }
    })
}
