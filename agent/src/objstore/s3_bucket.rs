//! Objects in an S3 bucket through `rust-s3`, under the URL's prefix: the
//! `s3://` URL syntax, path-style addressing for custom endpoints, and the
//! bucket handle swapped for one with fresh credentials when the ones in
//! use near expiry (the chain and schedule are `credentials`'). Must not
//! know the local store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};

use super::credentials::{self, Source};
use super::ObjectError;
use crate::runtime::clock::now_ms;

/// Objects in an S3 bucket under a key prefix.
pub struct S3Store {
    bucket: RwLock<Arc<Bucket>>,
    pub(super) prefix: String,
    /// Set when the credentials expire: where to fetch them again.
    refresh: Option<Refresh>,
}

/// The schedule of credentials that expire.
struct Refresh {
    source: Source,
    /// Unix ms from which the next call first fetches new credentials.
    at_ms: AtomicI64,
    /// One fetch at a time; calls meanwhile use the credentials in hand.
    gate: tokio::sync::Mutex<()>,
}

fn s3_err(e: S3Error) -> ObjectError {
    ObjectError::Io(format!("S3: {e}"))
}

impl S3Store {
    pub(super) fn new(url: &str, rest: &str) -> Result<S3Store, ObjectError> {
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
        // Blocking (network for some sources): this runs once, at start.
        let source =
            credentials::choose(&credentials::process_env).map_err(ObjectError::Credentials)?;
        let creds = credentials::fetch(&source).map_err(ObjectError::Credentials)?;
        let refresh = credentials::expires_ms(&creds).map(|expires| Refresh {
            at_ms: AtomicI64::new(credentials::refresh_at_ms(now_ms(), expires)),
            source: source.clone(),
            gate: tokio::sync::Mutex::new(()),
        });
        tracing::info!(%source, expires = refresh.is_some(), "S3 credentials");
        let mut store = S3Store::with_credentials(url, bucket, region, custom, prefix, creds)?;
        store.refresh = refresh;
        Ok(store)
    }

    pub(super) fn with_credentials(
        url: &str,
        bucket: &str,
        region: Region,
        custom: bool,
        prefix: &str,
        creds: Credentials,
    ) -> Result<S3Store, ObjectError> {
        let bad = |why: &str| ObjectError::BadUrl(format!("{url}: {why}"));
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
        Ok(S3Store {
            bucket: RwLock::new(Arc::from(bucket)),
            prefix,
            refresh: None,
        })
    }

    /// The bucket's name.
    pub(super) fn name(&self) -> String {
        self.bucket.read().name()
    }

    /// The bucket handle for one call, with credentials fetched again
    /// first when they near expiry. A failed fetch is logged and tried
    /// again [`credentials::REFRESH_RETRY`] later; until then the call uses
    /// the credentials in hand. Cancelling it leaves them as they were.
    async fn bucket(&self) -> Arc<Bucket> {
        if let Some(refresh) = &self.refresh {
            if now_ms() >= refresh.at_ms.load(Ordering::Acquire) {
                self.refresh_credentials(refresh).await;
            }
        }
        self.bucket.read().clone()
    }

    async fn refresh_credentials(&self, refresh: &Refresh) {
        let _one = refresh.gate.lock().await;
        if now_ms() < refresh.at_ms.load(Ordering::Acquire) {
            return; // another call refreshed them while this one waited
        }
        let source = refresh.source.clone();
        let fetched = tokio::task::spawn_blocking(move || credentials::fetch(&source))
            .await
            .unwrap_or_else(|e| Err(format!("the credentials fetch stopped: {e}")));
        match fetched {
            Ok(creds) => {
                let next = credentials::expires_ms(&creds)
                    .map_or(i64::MAX, |e| credentials::refresh_at_ms(now_ms(), e));
                let mut bucket = (**self.bucket.read()).clone();
                bucket.set_credentials(creds);
                *self.bucket.write() = Arc::new(bucket);
                refresh.at_ms.store(next, Ordering::Release);
                tracing::info!(source = %refresh.source, "S3 credentials refreshed");
            }
            Err(e) => {
                let retry = now_ms() + credentials::REFRESH_RETRY.as_millis() as i64;
                refresh.at_ms.store(retry, Ordering::Release);
                tracing::warn!(error = %e, "S3 credentials not refreshed; the ones in hand are kept");
            }
        }
    }

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        self.bucket()
            .await
            .put_object(self.key(key), &data)
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    pub(super) async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Bytes, ObjectError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        match self
            .bucket()
            .await
            .get_object_range(self.key(key), start, Some(start + len - 1))
            .await
        {
            Ok(r) => Ok(r.bytes().clone()),
            Err(S3Error::HttpFailWithBody(404, _)) => Err(ObjectError::NotFound(key.into())),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        match self.bucket().await.head_object(self.key(key)).await {
            Ok((head, _)) => Ok(Some(head.content_length.map_or(0, |n| n.max(0) as u64))),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match self.bucket().await.delete_object(self.key(key)).await {
            Ok(_) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(()),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let pages = self
            .bucket()
            .await
            .list(self.key(prefix), None)
            .await
            .map_err(s3_err)?;
        let mut keys: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.contents)
            .filter_map(|o| o.key.strip_prefix(&self.prefix).map(str::to_owned))
            .collect();
        keys.sort();
        Ok(keys)
    }
}
