//! What the shard log's integration tests share.

use glommio::LocalExecutorBuilder;

/// Runs `f` on a glommio executor of its own and waits for it (a panic in
/// it fails the test).
pub fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .spawn(f)
        .expect("executor")
        .join()
        .expect("join");
}
