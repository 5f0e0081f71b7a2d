//! The object store chunks go to: a local directory (the embedded default)
//! or S3 through `rust-s3`. Owns the `--object-store` URL syntax, key
//! layout under the configured prefix, and the durability of local writes
//! (write to a temporary file, fsync, rename, fsync the directory). Knows
//! nothing about chunks' contents. Runs on the control thread's tokio
//! runtime, never on a shard.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

pub mod credentials;
mod local;
mod s3_bucket;

use local::{read_file, LocalStore};
use s3_bucket::S3Store;

/// Object store errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object store URL {0}")]
    BadUrl(String),
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object store: {0}")]
    Io(String),
    /// No source of the credential chain gave S3 credentials.
    #[error("{0}")]
    Credentials(String),
}

/// Where chunks are kept.
enum Backend {
    Local(LocalStore),
    S3(S3Store),
}

/// Default of the per-call timeout's fixed part: 10 s.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Transfer rate every call is allowed on top of its fixed timeout:
/// 8 MiB/s (a 64 MiB segment gets 8 s more).
pub const MIN_TRANSFER_BYTES_PER_SEC: u64 = 8 << 20;

/// The object store, with a timeout on every call: a stalled request fails
/// (and is retried by its caller) instead of holding its caller until the
/// HTTP client's own minute runs out.
pub struct ObjectStore {
    backend: Backend,
    call_timeout: Duration,
}

impl ObjectStore {
    /// Parses `file:///DIR` or `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`.
    /// S3 credentials come from the AWS chain (`credentials`: environment,
    /// profile file, web identity, container, instance metadata); custom
    /// endpoints use path-style addressing. Calls time out after
    /// [`DEFAULT_CALL_TIMEOUT`] plus the transfer allowance.
    pub fn open(url: &str) -> Result<ObjectStore, ObjectError> {
        let backend = if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(ObjectError::BadUrl(format!(
                    "{url}: expected file:///absolute/dir"
                )));
            }
            Backend::Local(LocalStore::new(path)?)
        } else if let Some(rest) = url.strip_prefix("s3://") {
            Backend::S3(S3Store::new(url, rest)?)
        } else {
            return Err(ObjectError::BadUrl(format!(
                "{url}: use file:///DIR or s3://BUCKET?endpoint=URL&region=R"
            )));
        };
        Ok(ObjectStore {
            backend,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// Sets the fixed part of every call's timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long a call moving `bytes` may take: the fixed timeout plus
    /// `bytes` at [`MIN_TRANSFER_BYTES_PER_SEC`].
    pub fn timeout_for(&self, bytes: u64) -> Duration {
        self.call_timeout
            + Duration::from_millis(bytes.saturating_mul(1000) / MIN_TRANSFER_BYTES_PER_SEC)
    }

    async fn bounded<T>(
        &self,
        what: &str,
        bytes: u64,
        call: impl std::future::Future<Output = Result<T, ObjectError>>,
    ) -> Result<T, ObjectError> {
        let limit = self.timeout_for(bytes);
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(ObjectError::Io(format!(
                "{what} timed out after {} ms",
                limit.as_millis()
            )))
        })
    }

    /// Stores `data` under `key`, replacing any object there.
    ///
    /// Cancelling it may leave the object written or not; never half of it.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        let len = data.len() as u64;
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.put(key, data).await,
                Backend::S3(s) => s.put(key, data).await,
            }
        };
        self.bounded(&format!("PUT {key}"), len, call).await
    }

    /// Stores the file at `path` (which must not change any more) as `key`;
    /// returns its size in bytes. The local store links the file into
    /// place when it is on the same filesystem (no copy), and copies it
    /// otherwise; S3 reads it and PUTs it.
    ///
    /// Cancelling it may leave the object written or not; never half of it.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, ObjectError> {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.put_file(key, path).await,
                Backend::S3(s) => {
                    let data = read_file(path).await?;
                    let len = data.len() as u64;
                    s.put(key, data).await?;
                    Ok(len)
                }
            }
        };
        self.bounded(&format!("PUT {key}"), len, call).await
    }

    /// `len` bytes of `key` from byte `start`.
    pub async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, ObjectError> {
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.get_range(key, start, len).await,
                Backend::S3(s) => s.get_range(key, start, len).await,
            }
        };
        self.bounded(&format!("GET {key}"), len, call).await
    }

    /// Size of the object, or `None` if it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.size(key).await,
                Backend::S3(s) => s.size(key).await,
            }
        };
        self.bounded(&format!("HEAD {key}"), 0, call).await
    }

    /// Deletes `key`; one that is not there is not an error.
    ///
    /// Cancelling it may leave the object deleted or not.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.delete(key),
                Backend::S3(s) => s.delete(key).await,
            }
        };
        self.bounded(&format!("DELETE {key}"), 0, call).await
    }

    /// Keys of the objects whose key starts with `prefix` (a folder such as
    /// `compacted/`), sorted. Reads the whole listing: for the object
    /// sweep's prefixes, not for chunk folders at large.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let call = async {
            match &self.backend {
                Backend::Local(s) => s.list(prefix).await,
                Backend::S3(s) => s.list(prefix).await,
            }
        };
        self.bounded(&format!("LIST {prefix}"), 0, call).await
    }

    /// A short description for logs (no credentials).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(s) => format!("file://{}", s.root.display()),
            Backend::S3(s) => format!("s3://{}/{}", s.name(), s.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3::Region;

    /// A store on bucket `b` of the S3 server at `endpoint` (path style,
    /// fixed credentials), with the default call timeout.
    fn s3_at(endpoint: &str) -> ObjectStore {
        let region = Region::Custom {
            region: "us-east-1".into(),
            endpoint: endpoint.into(),
        };
        let creds = s3::creds::Credentials::new(Some("k"), Some("s"), None, None, None).unwrap();
        ObjectStore {
            backend: Backend::S3(
                S3Store::with_credentials(endpoint, "b", region, true, "", creds).unwrap(),
            ),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for url in [
            "ftp://x",
            "file://",
            "s3://?endpoint=http://h",
            "s3://b?color=red",
        ] {
            let err = ObjectStore::open(url).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(url)),
                "{url}: {err:?}"
            );
        }
        assert!(local::check_key("../x").is_err());
        assert!(local::check_key("a//b").is_err());
        assert!(local::check_key("chunks/a/b.wal").is_ok());
    }

    #[tokio::test]
    async fn local_put_file_links_without_copying_and_outlives_the_source() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(&format!("file://{}/objects", dir.path().display())).unwrap();
        let src = dir.path().join("segment.wal");
        std::fs::write(&src, b"sealed segment bytes").unwrap();
        assert_eq!(s.put_file("chunks/x/1.wal", &src).await.unwrap(), 20);
        let obj = dir.path().join("objects/chunks/x/1.wal");
        assert_eq!(
            std::fs::metadata(&obj).unwrap().ino(),
            std::fs::metadata(&src).unwrap().ino(),
            "same inode: linked, not copied"
        );
        // Storing it again (a restart before the commit) is harmless.
        assert_eq!(s.put_file("chunks/x/1.wal", &src).await.unwrap(), 20);
        std::fs::remove_file(&src).unwrap();
        assert_eq!(
            &s.get_range("chunks/x/1.wal", 7, 7).await.unwrap()[..],
            b"segment"
        );
        assert!(
            s.put_file("chunks/x/2.wal", &src).await.is_err(),
            "missing source"
        );
    }

    #[tokio::test]
    async fn an_https_endpoint_speaks_tls() {
        // A listener that records the first bytes the S3 client sends: a
        // TLS handshake starts with a handshake record (0x16, version 3.x).
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let first = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut c, _) = l.accept().await.unwrap();
            let mut b = [0u8; 2];
            c.read_exact(&mut b).await.unwrap();
            b
        });
        let s = s3_at(&format!("https://127.0.0.1:{port}"));
        let put = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s.put("k", Bytes::from_static(b"x")),
        );
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), first);
        let (hello, _) = tokio::join!(first, put);
        let hello = hello.expect("the client connected").unwrap();
        assert_eq!(hello, [0x16, 0x03], "a TLS handshake record");
    }

    /// Issue 14 item 7: an S3 server that accepts a request and never
    /// answers fails the call after its timeout (rust-s3's own bound was a
    /// minute), so the uploader retries it.
    #[tokio::test]
    async fn a_stalled_s3_request_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                open.push(c);
            }
        });
        let s = s3_at(&format!("http://127.0.0.1:{port}"))
            .with_call_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let put = tokio::time::timeout(
            Duration::from_secs(10),
            s.put("k", Bytes::from_static(b"x")),
        )
        .await
        .expect("the PUT was still waiting after 10 s");
        let e = put.unwrap_err().to_string();
        assert!(e.contains("timed out"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let get = s.get_range("k", 0, 1).await.unwrap_err().to_string();
        assert!(get.contains("timed out"), "{get}");
        held.abort();
    }

    #[test]
    fn bigger_calls_get_longer_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(s.timeout_for(0), DEFAULT_CALL_TIMEOUT);
        assert_eq!(
            s.timeout_for(64 << 20),
            DEFAULT_CALL_TIMEOUT + Duration::from_secs(8)
        );
    }

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(s.size("chunks/1").await.unwrap(), None);
        s.put("chunks/1", Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert_eq!(s.size("chunks/1").await.unwrap(), Some(11));
        assert_eq!(&s.get_range("chunks/1", 6, 5).await.unwrap()[..], b"world");
        assert!(matches!(
            s.get_range("chunks/2", 0, 1).await,
            Err(ObjectError::NotFound(_))
        ));
        s.delete("chunks/1").await.unwrap();
        assert_eq!(s.size("chunks/1").await.unwrap(), None);
        s.delete("chunks/1").await.expect("deleting what is gone");
    }
}
