//! The local object store (the embedded default): objects as files under
//! a root directory, each written to a temporary file, fsynced, renamed
//! into place and its directory fsynced. Must not know S3.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::ObjectError;

/// Objects as files under a root directory.
pub struct LocalStore {
    pub(super) root: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ObjectError {
    ObjectError::Io(format!("{what} {}: {e}", path.display()))
}

/// The whole file at `path`, read off the async thread.
pub(super) async fn read_file(path: &Path) -> Result<Bytes, ObjectError> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || std::fs::read(&p).map_err(|e| io("cannot read", &p, e)))
        .await
        .map_err(|e| ObjectError::Io(e.to_string()))?
        .map(Bytes::from)
}

/// Rejects keys that could escape the root.
pub(super) fn check_key(key: &str) -> Result<(), ObjectError> {
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

    pub(super) fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    pub(super) async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
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

    pub(super) async fn put_file(&self, key: &str, src: &Path) -> Result<u64, ObjectError> {
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

    pub(super) async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Bytes, ObjectError> {
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

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, ObjectError> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot stat", &path, e)),
        }
    }

    pub(super) fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("cannot delete", &path, e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let root = self.root.clone();
        let top = self.root.join(prefix.trim_end_matches('/'));
        let run = move || -> Result<Vec<String>, ObjectError> {
            let mut keys = Vec::new();
            let mut dirs = vec![top];
            while let Some(dir) = dirs.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("cannot list", &dir, e)),
                };
                for e in entries {
                    let path = e.map_err(|e| io("cannot list", &dir, e))?.path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_none_or(|x| x != "tmp") {
                        let rel = path.strip_prefix(&root).unwrap_or(&path);
                        keys.push(rel.to_string_lossy().into_owned());
                    }
                }
            }
            keys.sort();
            Ok(keys)
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| ObjectError::Io(e.to_string()))?
    }
}
