//! The room's rules, each a small value with its own test: the one name rule for every
//! source of names, the rate limit on a member's lines, and the backlog (bytes queued for a
//! member and not yet written) that decides when a slow member is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::NAME_RULE;

/// Whether `name` may be a member's name (not yet whether it is free): see [`NAME_RULE`].
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let lower = name.to_ascii_lowercase();
    let reserved = lower == "server"
        || lower
            .strip_prefix("guest")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !valid || reserved {
        return Err(NAME_RULE.into());
    }
    Ok(())
}

/// A token bucket: `rate` tokens a second, at most five seconds' worth saved up.
#[derive(Debug)]
pub(super) struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(super) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        RateLimit {
            rate,
            tokens: rate * 5.0,
            last: Instant::now(),
        }
    }

    /// Takes `cost` tokens if there are that many.
    pub(super) fn allow(&mut self, cost: f64) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.rate * 5.0);
        self.last = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The bytes queued for one room member and not yet written to its socket (counted until
/// the write that carries them has returned). A member whose backlog passes the room's
/// limit after a write was attempted is *dropped*: its queue is abandoned (so a slow client
/// cannot make the server buffer without bound, or stall anyone else) and it gets one
/// notice saying why. A backlog of twice the limit drops it at once, even while a write
/// is still blocked.
#[derive(Debug)]
pub struct Backlog {
    unsent: AtomicUsize,
    limit: usize,
    dropped: Mutex<Option<String>>,
}

impl Backlog {
    /// An empty backlog that may hold `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Backlog {
            unsent: AtomicUsize::new(0),
            limit,
            dropped: Mutex::new(None),
        }
    }

    /// Bytes queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    /// The most bytes that may wait after a write.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts `bytes` more queued bytes; returns the new total.
    pub fn push(&self, bytes: usize) -> usize {
        self.unsent.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    pub(super) fn sent(&self, bytes: usize) {
        let _ = self
            .unsent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |unsent| {
                Some(unsent.saturating_sub(bytes))
            });
    }

    /// The reason to drop the member, measured after a write: more than the limit unsent.
    pub(super) fn too_far_behind(&self) -> Option<String> {
        (self.unsent() > self.limit).then(|| self.drop_reason())
    }

    /// What a dropped member is told.
    pub fn drop_reason(&self) -> String {
        format!(
            "more than {} bytes were waiting for you; you were dropped",
            self.limit
        )
    }

    /// Marks the member as dropped, with the reason it will be told.
    pub fn drop_with(&self, reason: String) {
        let mut dropped = self.dropped.lock().unwrap_or_else(PoisonError::into_inner);
        dropped.get_or_insert(reason);
    }

    /// The reason, if the member was dropped.
    pub fn dropped(&self) -> Option<String> {
        self.dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The cost of a line against the rate limit: one, and one more per KiB past the first.
pub(super) fn line_cost(line: &str) -> f64 {
    1.0 + (line.len() / 1024) as f64
}
