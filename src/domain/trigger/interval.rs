//! Interval triggers: fixed elapsed time on a grid anchored at `start_at`.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct IntervalTrigger {
    pub every_s: u64,
    /// The grid's anchor, and its first fire time (inclusive bound).
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub jitter_s: u32,
}

impl IntervalTrigger {
    fn period(&self) -> TimeDelta {
        TimeDelta::seconds(self.every_s as i64)
    }

    /// `start_at + k·every_s` for the least k ≥ 0 that lies after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = if after < self.start_at {
            self.start_at
        } else {
            let period = self.period().num_microseconds()?;
            let elapsed = (after - self.start_at).num_microseconds()?;
            let k = elapsed / period + 1;
            self.start_at
                .checked_add_signed(TimeDelta::microseconds(k.checked_mul(period)?))?
        };
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// How many fire times lie in `[from, to]`, for `from` a fire time:
    /// arithmetic, so a long outage costs nothing to count.
    pub fn count_from(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let to = match self.end_at {
            Some(end) if end < to => end,
            _ => to,
        };
        if to < from {
            return 0;
        }
        let period = self.period().num_microseconds().unwrap_or(i64::MAX);
        let span = (to - from).num_microseconds().unwrap_or(i64::MAX);
        (span / period) as u64 + 1
    }

    /// The `n`-th fire time after `from` (a fire time), `n` ≥ 0.
    pub fn nth_from(&self, from: DateTime<Utc>, n: u64) -> Option<DateTime<Utc>> {
        let period = self.period().num_microseconds()?;
        let offset = i64::try_from(n).ok()?.checked_mul(period)?;
        from.checked_add_signed(TimeDelta::microseconds(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;

    fn every(s: u64, start: &str, end: Option<&str>) -> IntervalTrigger {
        IntervalTrigger {
            every_s: s,
            start_at: parse(start).unwrap(),
            end_at: end.map(|e| parse(e).unwrap()),
            jitter_s: 0,
        }
    }

    #[test]
    fn first_fire_is_start_at_itself() {
        let t = every(60, "2026-11-23T10:00:00Z", None);
        assert_eq!(
            t.next_after(parse("2026-11-23T09:00:00Z").unwrap()),
            Some(t.start_at)
        );
        assert_eq!(
            t.next_after(t.start_at),
            Some(parse("2026-11-23T10:01:00Z").unwrap())
        );
    }

    #[test]
    fn stays_on_the_grid_with_fractional_anchor() {
        let t = every(1, "2026-11-23T10:00:00.250Z", None);
        assert_eq!(
            t.next_after(parse("2026-11-23T10:05:07.9Z").unwrap()),
            Some(parse("2026-11-23T10:05:08.250Z").unwrap())
        );
        assert_eq!(
            t.next_after(parse("2026-11-23T10:05:08.250Z").unwrap()),
            Some(parse("2026-11-23T10:05:09.250Z").unwrap())
        );
    }

    #[test]
    fn dst_does_not_move_an_interval() {
        // 4 h apart in real time across New York's fall-back night.
        let t = every(14_400, "2026-11-01T04:00:00Z", None);
        let fires: Vec<_> = (0..3)
            .scan(parse("2026-11-01T03:00:00Z").unwrap(), |at, _| {
                *at = t.next_after(*at)?;
                Some(*at)
            })
            .collect();
        assert_eq!(
            fires,
            [
                parse("2026-11-01T04:00:00Z").unwrap(),
                parse("2026-11-01T08:00:00Z").unwrap(),
                parse("2026-11-01T12:00:00Z").unwrap()
            ]
        );
    }

    #[test]
    fn end_at_is_inclusive() {
        let t = every(60, "2026-11-23T10:00:00Z", Some("2026-11-23T10:02:00Z"));
        assert_eq!(
            t.next_after(parse("2026-11-23T10:01:00Z").unwrap()),
            Some(parse("2026-11-23T10:02:00Z").unwrap())
        );
        assert_eq!(t.next_after(parse("2026-11-23T10:02:00Z").unwrap()), None);
    }

    #[test]
    fn counts_a_week_of_seconds_by_arithmetic() {
        let t = every(1, "2026-11-16T00:00:00Z", None);
        let from = t.start_at;
        let to = parse("2026-11-23T00:00:00Z").unwrap();
        assert_eq!(t.count_from(from, to), 7 * 86_400 + 1);
        assert_eq!(t.nth_from(from, 7 * 86_400), Some(to));
        let bounded = every(1, "2026-11-16T00:00:00Z", Some("2026-11-16T00:00:09Z"));
        assert_eq!(bounded.count_from(from, to), 10);
    }
}
