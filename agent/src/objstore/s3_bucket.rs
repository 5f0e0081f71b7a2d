//! Objects in an S3 bucket through `rust-s3`, under the URL's prefix: the
//! `s3://` URL syntax, credentials from the environment, path-style
//! addressing for custom endpoints. Must not know the local store.

use bytes::Bytes;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};

use super::ObjectError;

/// Objects in an S3 bucket under a key prefix.
pub struct S3Store {
    pub(super) bucket: Box<Bucket>,
    pub(super) prefix: String,
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
        let access = std::env::var("AWS_ACCESS_KEY_ID")
            .map_err(|_| bad("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .map_err(|_| bad("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
        S3Store::with_credentials(url, bucket, region, custom, prefix, &access, &secret)
    }

    pub(super) fn with_credentials(
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

    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        self.bucket
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
            .bucket
            .get_object_range(self.key(key), start, Some(start + len - 1))
            .await
        {
            Ok(r) => Ok(r.bytes().clone()),
            Err(S3Error::HttpFailWithBody(404, _)) => Err(ObjectError::NotFound(key.into())),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        match self.bucket.head_object(self.key(key)).await {
            Ok((head, _)) => Ok(Some(head.content_length.map_or(0, |n| n.max(0) as u64))),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match self.bucket.delete_object(self.key(key)).await {
            Ok(_) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(()),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let pages = self
            .bucket
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
