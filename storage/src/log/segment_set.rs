//! The segment set: the open segment files, the active one and where its
//! writes stand (length, the partial block an O_DIRECT write starts with,
//! write generation, allocation), the sealed segments with their
//! subscriber, and the rules for when the active segment is due to be
//! sealed. Data and rules only, with time passed in: creating, allocating
//! and truncating files is `segments`, `alloc` and `roll`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use glommio::io::{BufferedFile, DmaFile};

use super::config::LogConfig;
use super::SealedSegment;

/// After a failed segment roll, how long appends stay on the active
/// segment before the roll is tried again.
pub(super) const ROLL_RETRY: Duration = Duration::from_secs(1);

/// One open segment file.
pub(super) struct SegmentFile {
    /// Reads (and, with `direct_io`, writes).
    pub(super) file: Rc<DmaFile>,
    /// Buffered writes of the active segment (without `direct_io`).
    pub(super) writer: Option<Rc<BufferedFile>>,
    pub(super) path: PathBuf,
}

/// Where the next write of the active segment goes.
pub(super) struct WriteSlot {
    pub(super) file: Rc<DmaFile>,
    /// The buffered writer; `None` with `direct_io`.
    pub(super) writer: Option<Rc<BufferedFile>>,
    /// Where the write starts in the file (with O_DIRECT, at the start of
    /// the partial block kept in the tail).
    pub(super) write_pos: u64,
    /// Where the write's first frame starts in the segment.
    pub(super) frame_base: u64,
    /// The write's generation, stamped into its frame headers.
    pub(super) gen: u64,
    pub(super) segment: u64,
}

/// The active segment's allocation ahead of writes (see `alloc`).
#[derive(Default)]
pub(super) struct Allocation {
    /// Bytes of the active segment, from its start, that are allocated;
    /// writes never go past it.
    pub(super) allocated: u64,
    /// Allocation beyond `allocated` in progress; it answers the new
    /// allocated length.
    pub(super) extending: Option<glommio::task::JoinHandle<Result<u64, String>>>,
}

/// The segments of one shard log.
pub(super) struct SegmentSet {
    files: BTreeMap<u64, SegmentFile>,
    sealed: Vec<SealedSegment>,
    subscriber: Option<mpsc::UnboundedSender<SealedSegment>>,
    active: u64,
    /// Bytes written to the active segment (frames only).
    active_len: u64,
    /// When the active segment got its first write.
    active_since: Option<Instant>,
    /// Someone waits for the active segment to be sealed.
    hurry: bool,
    /// Seal the active segment as soon as the writer is idle.
    seal_now: bool,
    /// With O_DIRECT: the partial last block written, rewritten at the
    /// start of the next write.
    tail: Vec<u8>,
    /// Generation of the last write (contiguous across segments).
    gen: u64,
    /// After a failed roll (the next segment could not be created, e.g. no
    /// file descriptor or no space): appends stay on the active segment and
    /// no roll is tried again before this instant.
    roll_retry_at: Option<Instant>,
    pub(super) alloc: Allocation,
}

impl SegmentSet {
    /// The set recovery found: its files, those sealed, the id the next
    /// active segment gets and the last write generation on disk.
    pub(super) fn new(
        files: BTreeMap<u64, SegmentFile>,
        sealed: Vec<SealedSegment>,
        active: u64,
        gen: u64,
    ) -> SegmentSet {
        SegmentSet {
            files,
            sealed,
            subscriber: None,
            active,
            active_len: 0,
            active_since: None,
            hurry: false,
            seal_now: false,
            tail: Vec::new(),
            gen,
            roll_retry_at: None,
            alloc: Allocation::default(),
        }
    }

    /// Replaces the set with what recovery found after the log failed,
    /// keeping the subscriber; segments sealed now that were not before are
    /// announced to it. No segment is active until [`SegmentSet::activate`].
    pub(super) fn recovered(&mut self, found: SegmentSet) {
        let known: std::collections::HashSet<u64> = self.sealed.iter().map(|s| s.id).collect();
        let subscriber = self.subscriber.take();
        *self = found;
        if let Some(tx) = &subscriber {
            for s in self.sealed.iter().filter(|s| !known.contains(&s.id)) {
                let _ = tx.unbounded_send(s.clone());
            }
        }
        self.subscriber = subscriber;
    }

    /// Makes `seg` the active segment `id`, with nothing written yet.
    pub(super) fn activate(&mut self, id: u64, seg: SegmentFile, allocated: u64) {
        self.files.insert(id, seg);
        self.active = id;
        self.active_len = 0;
        self.active_since = None;
        self.hurry = false;
        self.seal_now = false;
        self.tail.clear();
        self.roll_retry_at = None;
        self.alloc = Allocation {
            allocated,
            extending: None,
        };
    }

    pub(super) fn active(&self) -> u64 {
        self.active
    }

    pub(super) fn active_len(&self) -> u64 {
        self.active_len
    }

    pub(super) fn file(&self, id: u64) -> Option<&SegmentFile> {
        self.files.get(&id)
    }

    /// The next write's place in the active segment, with a new write
    /// generation; the segment's age counts from `now` if it is its first.
    /// `None` when the active segment has no file.
    pub(super) fn next_write(&mut self, now: Instant) -> Option<WriteSlot> {
        let seg = self.files.get(&self.active)?;
        let (file, writer) = (seg.file.clone(), seg.writer.clone());
        self.gen += 1;
        self.active_since.get_or_insert(now);
        Some(WriteSlot {
            file,
            writer,
            write_pos: self.active_len - self.tail.len() as u64,
            frame_base: self.active_len,
            gen: self.gen,
            segment: self.active,
        })
    }

    /// Bytes of the O_DIRECT tail (a partial block) the next write repeats.
    pub(super) fn tail_len(&self) -> usize {
        self.tail.len()
    }

    pub(super) fn take_tail(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tail)
    }

    pub(super) fn set_tail(&mut self, tail: Vec<u8>) {
        self.tail = tail;
    }

    /// A write of `bytes` frames to the active segment completed.
    pub(super) fn wrote(&mut self, bytes: u64) {
        self.active_len += bytes;
    }

    /// Age at which the active segment is sealed now.
    pub(super) fn seal_age(&self, config: &LogConfig) -> Duration {
        if self.seal_now {
            Duration::ZERO
        } else if self.hurry {
            config.hurried_age.min(config.segment_age)
        } else {
            config.segment_age
        }
    }

    /// Whether the active segment is to be sealed before a write of
    /// `incoming` bytes (0: none) at `now`: it holds data and is full or
    /// old enough, and no failed roll waits for its retry.
    pub(super) fn roll_due(&self, config: &LogConfig, incoming: usize, now: Instant) -> bool {
        if self.roll_retry_at.is_some_and(|t| now < t) {
            return false;
        }
        self.active_len > 0
            && (self.active_len + incoming as u64 > config.segment_bytes
                || self
                    .active_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= self.seal_age(config)))
    }

    /// How long an idle writer may sleep at `now` before the active segment
    /// is due by age (or its failed roll may be retried); `None` while it
    /// holds no data.
    pub(super) fn idle_for(&self, config: &LogConfig, now: Instant) -> Option<Duration> {
        self.active_since.map(|t| {
            let left = self
                .seal_age(config)
                .saturating_sub(now.saturating_duration_since(t));
            let retry = self
                .roll_retry_at
                .map_or(Duration::ZERO, |r| r.saturating_duration_since(now));
            left.max(retry)
        })
    }

    /// The next segment could not be created at `now`: no roll before
    /// [`ROLL_RETRY`] has passed.
    pub(super) fn roll_failed(&mut self, now: Instant) {
        self.roll_retry_at = Some(now + ROLL_RETRY);
    }

    /// Seal the active segment once the writer is idle.
    pub(super) fn seal_now(&mut self) {
        self.seal_now = true;
    }

    /// Shortens the active segment's seal age to `hurried_age`. Returns
    /// whether it was not hurried before (the writer must be woken).
    pub(super) fn hurry(&mut self) -> bool {
        !std::mem::replace(&mut self.hurry, true)
    }

    /// Stops writing segment `id` (it is being sealed): drops its buffered
    /// writer. Returns its path, if it is open.
    pub(super) fn stop_writing(&mut self, id: u64) -> Option<PathBuf> {
        let seg = self.files.get_mut(&id)?;
        seg.writer = None;
        Some(seg.path.clone())
    }

    /// Records a sealed segment and announces it to the subscriber.
    pub(super) fn sealed(&mut self, sealed: SealedSegment) {
        if let Some(tx) = &self.subscriber {
            let _ = tx.unbounded_send(sealed.clone());
        }
        self.sealed.push(sealed);
    }

    /// Segments sealed and not dropped, oldest first.
    pub(super) fn sealed_list(&self) -> &[SealedSegment] {
        &self.sealed
    }

    /// Sealed segments from now on, starting with those sealed already.
    /// One subscriber at a time; a new call replaces it.
    pub(super) fn subscribe(&mut self) -> mpsc::UnboundedReceiver<SealedSegment> {
        let (tx, rx) = mpsc::unbounded();
        for s in &self.sealed {
            let _ = tx.unbounded_send(s.clone());
        }
        self.subscriber = Some(tx);
        rx
    }

    /// Nobody is told about seals any more (the log closes).
    pub(super) fn unsubscribe(&mut self) {
        self.subscriber = None;
    }

    /// Forgets sealed segment `id`: returns its path and whether it is the
    /// last file (no active segment file after it), or `None` if it is not
    /// open. Refuses (`Err`) the active segment or later ones.
    pub(super) fn forget(&mut self, id: u64) -> Result<Option<(PathBuf, bool)>, ()> {
        if id >= self.active {
            return Err(());
        }
        self.sealed.retain(|s| s.id != id);
        let last = !self.files.keys().any(|k| *k > id);
        Ok(self.files.remove(&id).map(|s| (s.path, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LogConfig {
        let mut c = LogConfig::new(PathBuf::from("unused"));
        c.segment_bytes = 1000;
        c.segment_age = Duration::from_secs(10);
        c.hurried_age = Duration::from_secs(1);
        c
    }

    fn empty() -> SegmentSet {
        SegmentSet::new(BTreeMap::new(), Vec::new(), 3, 0)
    }

    fn sealed(id: u64) -> SealedSegment {
        SealedSegment {
            id,
            path: PathBuf::from(format!("{id}.wal")),
            len: 10,
        }
    }

    #[test]
    fn an_empty_segment_is_never_due() {
        let c = config();
        let mut s = empty();
        s.seal_now();
        assert!(!s.roll_due(&c, 5000, Instant::now()));
        assert_eq!(s.idle_for(&c, Instant::now()), None);
    }

    #[test]
    fn due_by_size_by_age_and_sooner_when_hurried_or_sealing_now() {
        let c = config();
        let mut s = empty();
        let t0 = Instant::now();
        s.active_since = Some(t0);
        s.wrote(600);
        assert!(!s.roll_due(&c, 400, t0));
        assert!(s.roll_due(&c, 401, t0), "past segment_bytes");
        assert!(!s.roll_due(&c, 0, t0 + Duration::from_secs(9)));
        assert!(
            s.roll_due(&c, 0, t0 + Duration::from_secs(10)),
            "segment_age"
        );
        assert_eq!(
            s.idle_for(&c, t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(s.hurry(), "first hurry wakes the writer");
        assert!(!s.hurry(), "a second one need not");
        assert!(
            s.roll_due(&c, 0, t0 + Duration::from_secs(1)),
            "hurried_age"
        );
        s.seal_now();
        assert!(s.roll_due(&c, 0, t0));
        assert_eq!(s.idle_for(&c, t0), Some(Duration::ZERO));
    }

    #[test]
    fn a_failed_roll_waits_for_its_retry() {
        let c = config();
        let mut s = empty();
        let t0 = Instant::now();
        s.active_since = Some(t0);
        s.wrote(2000);
        s.roll_failed(t0);
        assert!(!s.roll_due(&c, 0, t0 + ROLL_RETRY / 2));
        assert!(s.roll_due(&c, 0, t0 + ROLL_RETRY));
        assert_eq!(
            s.idle_for(&c, t0),
            Some(c.segment_age),
            "the larger wait wins"
        );
    }

    #[test]
    fn the_subscriber_gets_sealed_segments_before_and_after_subscribing() {
        let mut s = empty();
        s.sealed(sealed(1));
        let mut rx = s.subscribe();
        s.sealed(sealed(2));
        assert_eq!(rx.try_recv().ok().map(|s| s.id), Some(1));
        assert_eq!(rx.try_recv().ok().map(|s| s.id), Some(2));
        let found = SegmentSet::new(BTreeMap::new(), vec![sealed(1), sealed(2), sealed(3)], 4, 9);
        s.recovered(found);
        assert_eq!(rx.try_recv().ok().map(|s| s.id), Some(3), "only new seals");
        assert!(rx.try_recv().is_err(), "nothing else announced");
        assert_eq!(s.active(), 4);
    }

    #[test]
    fn only_sealed_segments_are_forgotten() {
        let mut s = empty();
        s.sealed(sealed(1));
        assert!(s.forget(3).is_err(), "the active segment");
        assert_eq!(s.forget(1), Ok(None), "no open file");
        assert!(s.sealed_list().is_empty());
    }
}
