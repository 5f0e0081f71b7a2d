//! Small real filesystems that fill up: an ext4 image made with
//! `mkfs.ext4 -m 0` (root gets no reserved blocks) on a loop device,
//! mounted in a temporary directory and unmounted on drop; and a thinly
//! provisioned one ([`ThinFs`]), whose sparse image lives on a small
//! filesystem of its own, so the disk under it fails once that fills up
//! although the filesystem itself reports free space. Needs root.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::target_tmp;

pub struct SmallFs {
    pub mount: PathBuf,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SmallFs {
    /// A mounted ext4 of `mib` MiB; `None` (the caller skips, saying so)
    /// when not running as root.
    pub fn new(mib: u64) -> Option<SmallFs> {
        if !is_root() {
            eprintln!("skipped: a loop-mounted filesystem needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("sh-smallfs-")
            .tempdir_in(target_tmp())
            .unwrap();
        let image = dir.path().join("fs.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount));
        Some(SmallFs { mount, _dir: dir })
    }

    /// Writes a file under the mount until the filesystem is full; returns
    /// its path.
    pub fn fill(&self) -> PathBuf {
        let path = self.mount.join(format!("filler-{}", rand_suffix()));
        std::fs::File::create(&path).unwrap();
        self.top_up(&path);
        path
    }

    /// Appends to a file made by [`fill`](Self::fill) until the filesystem
    /// is full again (after others gave space back).
    pub fn top_up(&self, filler: &Path) {
        let path = filler;
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let block = vec![0x5au8; 64 << 10];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let _ = f.sync_all();
        // Whatever delayed allocation left: small writes until none fits.
        loop {
            match f.write(&[0x5a; 512]) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = f.sync_all();
    }

    /// Deletes a file made by [`fill`](Self::fill), giving its space back.
    pub fn free(&self, filler: &Path) {
        std::fs::remove_file(filler).unwrap();
        run(&mut Command::new("sync"));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// An ext4 of `inner_mib` MiB on a loop device whose backing image is a
/// sparse file on a [`SmallFs`] of `outer_mib` MiB: writing to blocks of
/// the inner filesystem that were never written before needs space on the
/// outer one, and once that is full those writes fail with EIO (as a thin
/// volume or a full host disk under a VM image does).
pub struct ThinFs {
    pub mount: PathBuf,
    image: PathBuf,
    pub backing: SmallFs,
}

impl ThinFs {
    /// `None` (the caller skips, saying so) when not running as root.
    pub fn new(outer_mib: u64, inner_mib: u64) -> Option<ThinFs> {
        if !is_root() {
            eprintln!("skipped: a loop-mounted filesystem needs root");
            return None;
        }
        let backing = SmallFs::new(outer_mib)?;
        let image = backing.mount.join("thin.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(inner_mib << 20)
            .unwrap();
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image));
        let mount = backing._dir.path().join("thin");
        std::fs::create_dir(&mount).unwrap();
        let fs = ThinFs {
            mount,
            image,
            backing,
        };
        fs.mount();
        Some(fs)
    }

    fn mount(&self) {
        run(Command::new("mount")
            .args(["-o", "loop,errors=continue"])
            .arg(&self.image)
            .arg(&self.mount));
    }

    /// Unmounts, checks (`e2fsck -fy`, repairing what the failed writes
    /// left) and mounts the inner filesystem again, as an operator does
    /// after a disk failure. Nothing may hold files open on it.
    pub fn remount(&self) {
        run(Command::new("umount").arg(&self.mount));
        // e2fsck exits 1 when it corrected something: that is success here.
        let status = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            matches!(status.code(), Some(0..=1)),
            "e2fsck of the thin filesystem: {status}"
        );
        self.mount();
    }
}

impl Drop for ThinFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}
