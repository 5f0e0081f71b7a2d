//! A partition's leader-epoch history: the offset at which each lease
//! epoch began writing (the committed end when its holder acquired the
//! lease). It answers which epoch wrote the record at an offset, and where
//! an epoch's records end in today's log: the divergence point a consumer
//! that read a vanished leader's records must go back to. Pure data; imports
//! nothing of the crate. Kept in the metadata store (`leader_epochs`),
//! copied to the leading shard with the lease.

/// Entries kept per partition: the newest epochs. An epoch older than all
/// of them reads as unknown ([`EpochHistory::epoch_of`] gives `None`), and
/// its end as the oldest kept start: at worst a consumer re-reads records,
/// never skips one.
pub const MAX_EPOCHS_KEPT: usize = 1000;

/// Epoch `epoch` began writing at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: u64,
    pub start_offset: u64,
}

/// The epochs of one partition, ascending by epoch (and so by start: a new
/// holder starts at the committed end, which never moves back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochHistory {
    entries: Vec<EpochStart>,
}

/// Where the records an epoch wrote end, in today's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochEnd {
    /// Records of the epoch (and earlier ones) end at `end_offset`; the
    /// record before it has epoch `epoch_before` (`None` at offset 0 or
    /// when unknown).
    Ended {
        end_offset: u64,
        epoch_before: Option<u64>,
    },
    /// The epoch is the newest one known: its records go on to the log end.
    Current,
    /// The epoch is newer than any known here: this copy is stale.
    Unknown,
}

impl EpochHistory {
    /// A history from entries in any order; duplicates of an epoch keep
    /// the first, and only the newest [`MAX_EPOCHS_KEPT`] stay.
    pub fn new(mut entries: Vec<EpochStart>) -> Self {
        entries.sort_by_key(|e| e.epoch);
        entries.dedup_by_key(|e| e.epoch);
        if entries.len() > MAX_EPOCHS_KEPT {
            entries.drain(..entries.len() - MAX_EPOCHS_KEPT);
        }
        EpochHistory { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest epoch known.
    pub fn latest(&self) -> Option<u64> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch that wrote the record at `offset` in today's log: the
    /// newest epoch that began at or before it. `None` before the first
    /// known start.
    pub fn epoch_of(&self, offset: u64) -> Option<u64> {
        // Starts are non-decreasing: the last entry starting at or before
        // `offset` is the newest such epoch (an epoch that wrote nothing
        // shares its start with the next one, which wins).
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Where records of `epoch` end: the start of the first later epoch.
    pub fn end_of(&self, epoch: u64) -> EpochEnd {
        let i = self.entries.partition_point(|e| e.epoch <= epoch);
        match self.entries.get(i) {
            Some(next) => EpochEnd::Ended {
                end_offset: next.start_offset,
                epoch_before: next
                    .start_offset
                    .checked_sub(1)
                    .and_then(|o| self.epoch_of(o)),
            },
            None if self.latest().is_some_and(|l| l >= epoch) => EpochEnd::Current,
            // Nothing known, or only older epochs: a newer epoch exists
            // somewhere (or the history is missing); no divergence can be
            // shown from here.
            None if self.entries.is_empty() => EpochEnd::Current,
            None => EpochEnd::Unknown,
        }
    }

    /// The epochs of records `first..=last`, as (start, epoch) in offset
    /// order: the first entry starts at `first`; epoch 0 stands for
    /// unknown. Empty when no record of the range has a known epoch.
    pub fn spans(&self, first: u64, last: u64) -> Vec<EpochStart> {
        let mut out = vec![EpochStart {
            epoch: self.epoch_of(first).unwrap_or(0),
            start_offset: first,
        }];
        let from = self.entries.partition_point(|e| e.start_offset <= first);
        for e in &self.entries[from..] {
            if e.start_offset > last {
                break;
            }
            match out.last_mut() {
                // Epochs that wrote nothing share a start: the newest wins.
                Some(prev) if prev.start_offset == e.start_offset => prev.epoch = e.epoch,
                _ => out.push(*e),
            }
        }
        if out.len() == 1 && out[0].epoch == 0 {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(u64, u64)]) -> EpochHistory {
        EpochHistory::new(
            pairs
                .iter()
                .map(|&(epoch, start_offset)| EpochStart {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
    }

    #[test]
    fn the_epoch_of_an_offset_is_the_newest_that_began_at_or_before_it() {
        // Epoch 3 wrote nothing (taken and lost before a write).
        let x = h(&[(1, 0), (2, 5068), (3, 6000), (4, 6000)]);
        assert_eq!(x.epoch_of(0), Some(1));
        assert_eq!(x.epoch_of(5067), Some(1));
        assert_eq!(x.epoch_of(5068), Some(2));
        assert_eq!(x.epoch_of(5999), Some(2));
        assert_eq!(x.epoch_of(6000), Some(4));
        assert_eq!(h(&[(5, 100)]).epoch_of(99), None);
        assert_eq!(EpochHistory::default().epoch_of(0), None);
    }

    #[test]
    fn an_epoch_ends_where_the_next_began() {
        let x = h(&[(1, 0), (2, 5068), (4, 6000)]);
        assert_eq!(
            x.end_of(1),
            EpochEnd::Ended {
                end_offset: 5068,
                epoch_before: Some(1)
            }
        );
        // An epoch this history never saw (3) ends where the next began.
        assert_eq!(
            x.end_of(3),
            EpochEnd::Ended {
                end_offset: 6000,
                epoch_before: Some(2)
            }
        );
        assert_eq!(x.end_of(4), EpochEnd::Current);
        assert_eq!(x.end_of(5), EpochEnd::Unknown);
        assert_eq!(EpochHistory::default().end_of(7), EpochEnd::Current);
        // A first epoch that wrote nothing: nothing before the end.
        assert_eq!(
            h(&[(1, 0), (2, 0)]).end_of(1),
            EpochEnd::Ended {
                end_offset: 0,
                epoch_before: None
            }
        );
    }

    #[test]
    fn spans_cover_the_records_in_offset_order() {
        let x = h(&[(1, 0), (2, 10), (3, 20), (4, 20), (5, 30)]);
        let s = |a, b| -> Vec<(u64, u64)> {
            x.spans(a, b)
                .iter()
                .map(|e| (e.start_offset, e.epoch))
                .collect()
        };
        assert_eq!(s(5, 9), vec![(5, 1)]);
        assert_eq!(s(5, 25), vec![(5, 1), (10, 2), (20, 4)]);
        assert_eq!(s(20, 40), vec![(20, 4), (30, 5)]);
        let y = h(&[(3, 50)]);
        let ys: Vec<(u64, u64)> = y
            .spans(0, 100)
            .iter()
            .map(|e| (e.start_offset, e.epoch))
            .collect();
        assert_eq!(ys, vec![(0, 0), (50, 3)]);
        assert!(y.spans(0, 10).is_empty());
    }

    #[test]
    fn only_the_newest_epochs_are_kept() {
        let many: Vec<(u64, u64)> = (1..=1500).map(|e| (e, e * 10)).collect();
        let x = h(&many);
        assert_eq!(x.latest(), Some(1500));
        assert_eq!(x.epoch_of(5010), Some(501));
        assert_eq!(x.epoch_of(5009), None);
        // A forgotten epoch ends, at the latest, at the oldest kept start.
        assert!(matches!(
            x.end_of(3),
            EpochEnd::Ended {
                end_offset: 5010,
                ..
            }
        ));
    }
}
