//! The object store chunks go to: a local directory (the embedded default)
//! or S3 through `rust-s3`. Owns the `--object-store` URL syntax, key
//! layout under the configured prefix, and the durability of local writes
//! (write to a temporary file, fsync, rename, fsync the directory). Knows
//! nothing about chunks' contents. Runs on the control thread's tokio
//! runtime, never on a shard.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};

/// Object store errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object store URL {0}")]
    BadUrl(String),
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object store: {0}")]
    Io(String),
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
    /// S3 credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`;
    /// custom endpoints use path-style addressing. Calls time out after
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
                Backend::Local(s) => {
                    let path = s.path(key)?;
                    match std::fs::remove_file(&path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(io("cannot delete", &path, e)),
                    }
                }
                Backend::S3(s) => match s.bucket.delete_object(s.key(key)).await {
                    Ok(_) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(()),
                    Err(e) => Err(s3_err(e)),
                },
            }
        };
        self.bounded(&format!("DELETE {key}"), 0, call).await
    }

    /// A short description for logs (no credentials).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(s) => format!("file://{}", s.root.display()),
            Backend::S3(s) => format!("s3://{}/{}", s.bucket.name(), s.prefix),
        }
    }
}

/// Objects as files under a root directory.
pub struct LocalStore {
    root: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ObjectError {
    ObjectError::Io(format!("{what} {}: {e}", path.display()))
}

/// The whole file at `path`, read off the async thread.
async fn read_file(path: &Path) -> Result<Bytes, ObjectError> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || std::fs::read(&p).map_err(|e| io("cannot read", &p, e)))
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))?
        .map(Bytes::from)
}

/// Rejects keys that could escape the root.
fn check_key(key: &str) -> Result<(), ObjectError> {
    if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == ".." || p.is_empty()) {
        return Err(ObjectError::Io(format!("invalid object key {key:?}")));
    }
    Ok(())
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalStore, ObjectError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io("cannot create", &root, e))?;
        Ok(LocalStore { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        let run = move || -> Result<(), ObjectError> {
            use std::io::Write;
            let dir = path
                .parent()
                .ok_or_else(|| ObjectError::Io(format!("no parent for {}", path.display())))?;
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
            f.write_all(&data)
                .map_err(|e| io("cannot write", &tmp, e))?;
            f.sync_all().map_err(|e| io("cannot sync", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename", &tmp, e))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("cannot sync", dir, e))
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<u64, ObjectError> {
        let path = self.path(key)?;
        let (src, copy_from) = (src.to_owned(), src.to_owned());
        let run = move || -> Result<Option<u64>, ObjectError> {
            let len = std::fs::metadata(&src)
                .map_err(|e| io("cannot stat", &src, e))?
                .len();
            let dir = path
                .parent()
                .ok_or_else(|| ObjectError::Io(format!("no parent for {}", path.display())))?;
            std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            if std::fs::hard_link(&src, &tmp).is_err() {
                // Another filesystem (or no links): the caller copies.
                return Ok(None);
            }
            // The source's bytes are already synced by whoever wrote it;
            // the new name becomes durable with the directory.
            std::fs::rename(&tmp, &path).map_err(|e| io("cannot rename", &tmp, e))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("cannot sync", dir, e))?;
            Ok(Some(len))
        };
        let linked = tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))??;
        if let Some(len) = linked {
            return Ok(len);
        }
        let data = read_file(&copy_from).await?;
        let len = data.len() as u64;
        self.put(key, data).await?;
        Ok(len)
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, ObjectError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        let run = move || -> Result<Bytes, ObjectError> {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ObjectError::NotFound(key))
                }
                Err(e) => return Err(io("cannot open", &path, e)),
            };
            f.seek(SeekFrom::Start(start))
                .map_err(|e| io("cannot seek", &path, e))?;
            let mut buf = Vec::with_capacity(len as usize);
            f.take(len)
                .read_to_end(&mut buf)
                .map_err(|e| io("cannot read", &path, e))?;
            Ok(Bytes::from(buf))
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot stat", &path, e)),
        }
    }
}

/// Objects in an S3 bucket under a key prefix.
pub struct S3Store {
    bucket: Box<Bucket>,
    prefix: String,
}

fn s3_err(e: S3Error) -> ObjectError {
    ObjectError::Io(format!("S3: {e}"))
}

impl S3Store {
    fn new(url: &str, rest: &str) -> Result<S3Store, ObjectError> {
        let bad = |why: &str| ObjectError::BadUrl(format!("{url}: {why}"));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad("the bucket name is missing"));
        }
        let mut endpoint = None;
        let mut region = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => endpoint = Some(v.to_owned()),
                Some(("region", v)) => region = Some(v.to_owned()),
                _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
            }
        }
        let region_name = region.unwrap_or_else(|| "us-east-1".into());
        let custom = endpoint.is_some();
        let region = match endpoint {
            Some(endpoint) => {
                if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                    return Err(bad("endpoint must be an http:// or https:// URL"));
                }
                Region::Custom {
                    region: region_name,
                    endpoint,
                }
            }
            None => region_name
                .parse()
                .map_err(|_| bad("unknown region; give endpoint= for other servers"))?,
        };
        let access = std::env::var("AWS_ACCESS_KEY_ID")
            .map_err(|_| bad("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .map_err(|_| bad("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
        S3Store::with_credentials(url, bucket, region, custom, prefix, &access, &secret)
    }

    fn with_credentials(
        url: &str,
        bucket: &str,
        region: Region,
        custom: bool,
        prefix: &str,
        access: &str,
        secret: &str,
    ) -> Result<S3Store, ObjectError> {
        let bad = |why: &str| ObjectError::BadUrl(format!("{url}: {why}"));
        let creds = Credentials::new(Some(access), Some(secret), None, None, None)
            .map_err(|e| bad(&e.to_string()))?;
        let mut bucket = Bucket::new(bucket, region, creds).map_err(|e| bad(&e.to_string()))?;
        if custom {
            bucket = bucket.with_path_style();
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok(S3Store { bucket, prefix })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        self.bucket
            .put_object(self.key(key), &data)
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes, ObjectError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        match self
            .bucket
            .get_object_range(self.key(key), start, Some(start + len - 1))
            .await
        {
            Ok(r) => Ok(r.bytes().clone()),
            Err(S3Error::HttpFailWithBody(404, _)) => Err(ObjectError::NotFound(key.into())),
            Err(e) => Err(s3_err(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        match self.bucket.head_object(self.key(key)).await {
            Ok((head, _)) => Ok(Some(head.content_length.map_or(0, |n| n.max(0) as u64))),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on bucket `b` of the S3 server at `endpoint` (path style,
    /// fixed credentials), with the default call timeout.
    fn s3_at(endpoint: &str) -> ObjectStore {
        let region = Region::Custom {
            region: "us-east-1".into(),
            endpoint: endpoint.into(),
        };
        ObjectStore {
            backend: Backend::S3(
                S3Store::with_credentials(endpoint, "b", region, true, "", "k", "s").unwrap(),
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
        assert!(check_key("../x").is_err());
        assert!(check_key("a//b").is_err());
        assert!(check_key("chunks/a/b.wal").is_ok());
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
