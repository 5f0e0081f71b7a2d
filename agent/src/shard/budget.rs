//! Byte budgets for what one shard holds in memory: request bodies, and
//! the replies built from reads, each with one budget for the whole shard
//! and one per connection. A request reserves its declared message size
//! from both before its body is read (and before flow-control credit is
//! given back for it), and the reservation is returned when the request is
//! answered; a reply reserves the most its read can build before reading
//! and returns it once its last byte was handed to HTTP/2. Owns the
//! accounting only; lives on one executor (`Rc`/`Cell`, never shared
//! across cores). Knows nothing of HTTP/2.

use std::cell::Cell;
use std::rc::Rc;

/// A budget of bytes (shared by `Rc` among the requests that draw on it).
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: Cell<usize>,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Rc<Budget> {
        Rc::new(Budget {
            limit,
            used: Cell::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Why a reservation was refused: which budget, and its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// The budget's name, such as "requests on this shard".
    pub scope: &'static str,
    pub wanted: usize,
    pub used: usize,
    pub limit: usize,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes do not fit: {} bytes are held for {} (limit {}); retry later",
            self.wanted, self.used, self.scope, self.limit
        )
    }
}

/// Bytes held from every budget of a request; returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    held: Vec<Rc<Budget>>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `bytes` from every budget in `budgets` (each named for
    /// errors), or from none of them.
    pub fn take(
        budgets: &[(&'static str, Rc<Budget>)],
        bytes: usize,
    ) -> Result<Reservation, Exhausted> {
        for (scope, b) in budgets {
            let used = b.used.get();
            if used.saturating_add(bytes) > b.limit {
                return Err(Exhausted {
                    scope,
                    wanted: bytes,
                    used,
                    limit: b.limit,
                });
            }
        }
        for (_, b) in budgets {
            b.used.set(b.used.get() + bytes);
        }
        Ok(Reservation {
            held: budgets.iter().map(|(_, b)| Rc::clone(b)).collect(),
            bytes,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for b in &self.held {
            b.used.set(b.used.get() - self.bytes);
        }
    }
}

/// The reply budgets of one request (shard and connection) and what its
/// reply holds of them; dropping it returns the bytes.
#[derive(Debug)]
pub struct ReplyBudget {
    budgets: Vec<(&'static str, Rc<Budget>)>,
    held: Option<Reservation>,
}

impl ReplyBudget {
    /// A reply drawing on `budgets`, each named for errors.
    pub fn new(budgets: Vec<(&'static str, Rc<Budget>)>) -> ReplyBudget {
        ReplyBudget {
            budgets,
            held: None,
        }
    }

    /// The largest reservation that can ever succeed: the smallest budget.
    pub fn ceiling(&self) -> usize {
        self.budgets
            .iter()
            .map(|(_, b)| b.limit())
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Holds `bytes` (instead of what was held before), or nothing.
    pub fn reserve(&mut self, bytes: usize) -> Result<(), Exhausted> {
        self.held = None;
        self.held = Some(Reservation::take(&self.budgets, bytes)?);
        Ok(())
    }

    /// Holds `bytes`, or when that is more than the smallest budget, the
    /// smallest budget's size from every budget while nothing else is held
    /// from them: a reply larger than a budget is made alone, and others
    /// wait for it (RESOURCE_EXHAUSTED) until it is handed over.
    pub fn reserve_up_to_alone(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let ceiling = self.ceiling();
        if bytes <= ceiling {
            return self.reserve(bytes);
        }
        self.held = None;
        if let Some((scope, b)) = self.budgets.iter().find(|(_, b)| b.used() > 0) {
            return Err(Exhausted {
                scope,
                wanted: bytes,
                used: b.used(),
                limit: b.limit(),
            });
        }
        self.held = Some(Reservation::take(&self.budgets, ceiling)?);
        Ok(())
    }

    /// Returns what is held (a reply that waits for data holds nothing).
    pub fn release(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_takes_from_every_budget_or_none_and_returns_on_drop() {
        let shard = Budget::new(100);
        let conn = Budget::new(60);
        let both = [
            ("requests on this shard", shard.clone()),
            ("requests on this connection", conn.clone()),
        ];
        let a = Reservation::take(&both, 50).unwrap();
        assert_eq!((shard.used(), conn.used()), (50, 50));
        let refused = Reservation::take(&both, 20).unwrap_err();
        assert_eq!(refused.scope, "requests on this connection");
        assert_eq!((shard.used(), conn.used()), (50, 50), "nothing taken");
        let other = Budget::new(60);
        let b = Reservation::take(
            &[("shard", shard.clone()), ("connection", other.clone())],
            50,
        )
        .unwrap();
        assert_eq!(shard.used(), 100);
        let refused = Reservation::take(&[("shard", shard.clone())], 1).unwrap_err();
        assert_eq!(refused.scope, "shard");
        drop(a);
        assert_eq!((shard.used(), conn.used()), (50, 0));
        drop(b);
        assert_eq!((shard.used(), other.used()), (0, 0));
    }

    #[test]
    fn a_reply_larger_than_a_budget_is_made_alone() {
        let shard = Budget::new(100);
        let conn = Budget::new(60);
        let budgets = || {
            vec![
                ("replies on this shard", shard.clone()),
                ("replies on this connection", conn.clone()),
            ]
        };
        let mut small = ReplyBudget::new(budgets());
        small.reserve_up_to_alone(40).unwrap();
        assert_eq!((shard.used(), conn.used()), (40, 40));
        // Past the smallest budget: refused while anything else is held...
        let mut large = ReplyBudget::new(budgets());
        let refused = large.reserve_up_to_alone(500).unwrap_err();
        assert_eq!(refused.wanted, 500);
        small.release();
        // ... and then holds the smallest budget from every budget.
        large.reserve_up_to_alone(500).unwrap();
        assert_eq!((shard.used(), conn.used()), (60, 60));
        assert!(ReplyBudget::new(budgets())
            .reserve_up_to_alone(500)
            .is_err());
        drop(large);
        assert_eq!((shard.used(), conn.used()), (0, 0));
    }
}
