//! The physical floor, measured in the same run as a figure: raw
//! `fdatasync` latency after 64 KiB buffered appends (the WAL's default
//! write pattern), the bandwidth of 1 MiB appends each followed by
//! `fdatasync` (the most a log that syncs before every ack can move),
//! sequential O_DIRECT write bandwidth with one final sync, and loopback TCP
//! bandwidth. Owns these measurements only.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Floor figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floor {
    /// fdatasync after a 64 KiB append: p50 and p99, ms.
    pub fdatasync_p50_ms: f64,
    pub fdatasync_p99_ms: f64,
    /// Sequential O_DIRECT write + one fdatasync, MB/s (10^6 bytes).
    pub disk_write_mb_s: f64,
    /// 1 MiB buffered appends, each followed by fdatasync, MB/s.
    pub synced_append_mb_s: f64,
    /// Loopback TCP, one connection, MB/s.
    pub loopback_mb_s: f64,
}

/// A 4 KiB-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }
    fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

fn open_direct(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

fn open_buffered(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
}

/// fdatasync latency histogram (µs) over `n` buffered appends of 64 KiB.
pub fn fdatasync_latency(dir: &Path, n: usize) -> std::io::Result<Histogram<u64>> {
    let path = dir.join("floor-fdatasync.tmp");
    let mut f = open_buffered(&path)?;
    let buf = vec![0x5a_u8; 64 << 10];
    let mut h = Histogram::<u64>::new(3).map_err(std::io::Error::other)?;
    for _ in 0..n {
        f.write_all(&buf)?;
        let t = Instant::now();
        f.sync_data()?;
        let _ = h.record(t.elapsed().as_micros() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(h)
}

/// Sequential O_DIRECT write of `bytes` in 1 MiB writes plus one
/// fdatasync; MB/s.
pub fn disk_bandwidth(dir: &Path, bytes: usize) -> std::io::Result<f64> {
    let path = dir.join("floor-bandwidth.tmp");
    let mut f = open_direct(&path)?;
    let buf = Aligned::new(1 << 20);
    let t = Instant::now();
    for _ in 0..bytes / (1 << 20) {
        f.write_all(buf.as_slice())?;
    }
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(bytes as f64 / 1e6 / secs)
}

/// `bytes` in 1 MiB buffered appends, each followed by fdatasync; MB/s.
pub fn synced_append_bandwidth(dir: &Path, bytes: usize) -> std::io::Result<f64> {
    let path = dir.join("floor-synced.tmp");
    let mut f = open_buffered(&path)?;
    let buf = vec![0x5a_u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..bytes / buf.len() {
        f.write_all(&buf)?;
        f.sync_data()?;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(bytes as f64 / 1e6 / secs)
}

/// One loopback TCP connection moving `bytes`; MB/s.
pub fn loopback_bandwidth(bytes: usize) -> std::io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < bytes {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(())
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    let buf = vec![7u8; 1 << 20];
    let t = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        s.write_all(&buf)?;
        sent += buf.len();
    }
    drop(s);
    reader
        .join()
        .map_err(|_| std::io::Error::other("reader thread panicked"))??;
    Ok(bytes as f64 / 1e6 / t.elapsed().as_secs_f64())
}

/// All floor figures for the disk holding `dir`.
pub fn measure(dir: &Path) -> std::io::Result<Floor> {
    let h = fdatasync_latency(dir, 200)?;
    Ok(Floor {
        fdatasync_p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
        fdatasync_p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        disk_write_mb_s: disk_bandwidth(dir, 256 << 20)?,
        synced_append_mb_s: synced_append_bandwidth(dir, 256 << 20)?,
        loopback_mb_s: loopback_bandwidth(2 << 30)?,
    })
}

/// Human-readable floor line.
pub fn describe(f: &Floor) -> String {
    format!(
        "floor: fdatasync after 64 KiB append p50 {:.2} ms, p99 {:.2} ms; 1 MiB appends each synced {:.0} MB/s; sequential write {:.0} MB/s; loopback TCP {:.0} MB/s",
        f.fdatasync_p50_ms, f.fdatasync_p99_ms, f.synced_append_mb_s, f.disk_write_mb_s, f.loopback_mb_s
    )
}
