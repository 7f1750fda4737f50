//! Requests that a cancel aborts: a run cancelled while it is sent
//! (overlap `replace`, DESIGN.md §11.1). The database has already ended
//! the run, and a late answer is fenced off; this only stops the request.
//! Across PostgreSQL instances, `NOTIFY` feeds the same calls.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Cancelled runs remembered before their request is registered (a
/// notification may overtake it); past this many, they are forgotten.
const EARLY_KEPT: usize = 10_000;

#[derive(Debug, Default)]
pub struct Aborts(Mutex<Registry>);

#[derive(Debug, Default)]
struct Registry {
    open: HashMap<Uuid, CancellationToken>,
    /// Cancelled before their request was registered.
    early: HashSet<Uuid>,
}

impl Aborts {
    /// The token that aborts `run`'s request once the run is cancelled
    /// (cancelled already when it was); [`Self::ended`] forgets it.
    pub fn open(&self, run: Uuid) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut registry) = self.0.lock() {
            if registry.early.remove(&run) {
                token.cancel();
            } else {
                registry.open.insert(run, token.clone());
            }
        }
        token
    }

    /// `run`'s request has ended.
    pub fn ended(&self, run: Uuid) {
        if let Ok(mut registry) = self.0.lock() {
            registry.open.remove(&run);
        }
    }

    /// Runs were cancelled: their requests in flight here are aborted.
    pub fn cancelled(&self, runs: &[Uuid]) {
        let Ok(mut registry) = self.0.lock() else {
            return;
        };
        for run in runs {
            match registry.open.remove(run) {
                Some(token) => token.cancel(),
                None => {
                    if registry.early.len() >= EARLY_KEPT {
                        registry.early.clear();
                    }
                    registry.early.insert(*run);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_aborts_the_open_request_and_one_not_yet_open() {
        let aborts = Aborts::default();
        let (open, later) = (Uuid::now_v7(), Uuid::now_v7());
        let token = aborts.open(open);
        assert!(!token.is_cancelled());
        aborts.cancelled(&[open, later]);
        assert!(token.is_cancelled());
        // Cancelled before its request was registered: aborted at once.
        assert!(aborts.open(later).is_cancelled());
        // Remembered once only.
        assert!(!aborts.open(later).is_cancelled());
        aborts.ended(later);
        assert!(aborts.0.lock().unwrap().open.is_empty());
    }
}
