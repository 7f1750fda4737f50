//! Leases and the instances that hold them (DESIGN.md §5): when another
//! instance may take a run over.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// How often an instance beats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long an instance may be silent before its leases are taken over
/// (`--instance-timeout-s`).
pub const DEFAULT_INSTANCE_TIMEOUT: Duration = Duration::from_secs(3);

/// An instance is alive while its last heartbeat (database clock) is no
/// older than the timeout.
pub fn is_alive(heartbeat_at: DateTime<Utc>, now: DateTime<Utc>, timeout: Duration) -> bool {
    let timeout = TimeDelta::from_std(timeout).unwrap_or(TimeDelta::MAX);
    now - heartbeat_at <= timeout
}

/// Which of `instances` (id, last heartbeat) are alive at `now`: only
/// their leases are honoured until `lease_until`. A lease whose owner is
/// not among them, dead or unknown, may be taken over at once.
pub fn live_owners<'a>(
    instances: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Vec<String> {
    instances
        .into_iter()
        .filter(|(_, beat)| is_alive(*beat, now, timeout))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// A process's own view of whether it is alive: it counts as dead to the
/// others once it has missed its heartbeats for the timeout, and then it
/// must not start a request another instance may start too.
pub fn still_alive(since_last_beat: Duration, timeout: Duration) -> bool {
    since_last_beat <= timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;

    #[test]
    fn an_instance_is_alive_within_its_timeout() {
        let now = parse("2026-11-23T10:00:10Z").unwrap();
        let timeout = Duration::from_secs(3);
        assert!(is_alive(
            parse("2026-11-23T10:00:09Z").unwrap(),
            now,
            timeout
        ));
        assert!(is_alive(
            parse("2026-11-23T10:00:07Z").unwrap(),
            now,
            timeout
        ));
        assert!(!is_alive(
            parse("2026-11-23T10:00:06.999999Z").unwrap(),
            now,
            timeout
        ));
        // A clock a little ahead of the database's is not a death.
        assert!(is_alive(
            parse("2026-11-23T10:00:11Z").unwrap(),
            now,
            timeout
        ));
        let live = live_owners(
            [
                ("a", parse("2026-11-23T10:00:09Z").unwrap()),
                ("b", parse("2026-11-23T10:00:01Z").unwrap()),
            ],
            now,
            timeout,
        );
        assert_eq!(live, ["a"]);
    }

    #[test]
    fn a_process_that_missed_its_beats_stops_itself() {
        let timeout = Duration::from_secs(3);
        assert!(still_alive(Duration::from_millis(2900), timeout));
        assert!(!still_alive(Duration::from_millis(3100), timeout));
    }
}
