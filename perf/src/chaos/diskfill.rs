//! A small real filesystem per agent for the chaos run's "WAL disk fills
//! up" fault: an ext4 image made with `mkfs.ext4 -m 0` (root gets no
//! reserved blocks) on a loop device, mounted under the agent's directory
//! and unmounted on drop. Filling writes a file until `ENOSPC`; freeing
//! deletes it. Needs root and `mkfs.ext4`; [`available`] says whether the
//! run can use it. Owns the image, the mount and the filler file only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted small ext4.
pub struct SmallDisk {
    pub mount: PathBuf,
    image: PathBuf,
    filler: PathBuf,
}

/// `Ok` when the run may mount filesystems (root and `mkfs.ext4` found),
/// else why not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("a loop-mounted filesystem needs root".into());
    }
    match Command::new("mkfs.ext4").arg("-V").output() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("mkfs.ext4 not found ({e}); install e2fsprogs")),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl SmallDisk {
    /// Makes a `mib` MiB ext4 image in `dir` and mounts it at `dir/mnt`.
    pub fn mount(dir: &Path, mib: u64) -> Result<SmallDisk, String> {
        let image = dir.join("disk.img");
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .map_err(|e| format!("{}: {e}", image.display()))?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount))?;
        Ok(SmallDisk {
            filler: mount.join("filler"),
            mount,
            image,
        })
    }

    /// Writes the filler file until the filesystem refuses more; returns
    /// the bytes written.
    pub fn fill(&self) -> Result<u64, String> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .map_err(|e| format!("{}: {e}", self.filler.display()))?;
        let block = vec![0xA5u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(format!("filling {}: {e}", self.filler.display())),
            }
        }
        // Small writes take the last blocks a large one could not.
        let small = [0x5Au8; 4096];
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        let _ = f.sync_all();
        Ok(written)
    }

    /// Deletes the filler file.
    pub fn free(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.filler) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.filler.display())),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).output();
        let _ = std::fs::remove_file(&self.image);
    }
}
