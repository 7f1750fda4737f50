//! A trigger as a person reads it (the dashboard, DESIGN.md §10): in
//! words, and its coming fire times with the ones a daylight-saving change
//! moves marked.

use chrono::{DateTime, Utc};

use super::{Trigger, utc_offset_s};
use crate::domain::calendar::policy::OnExcluded;
use crate::domain::instant;

/// The trigger in words: "At 02:30. (Asia/Seoul)", "every 1 h 30 min",
/// "once, at 2026-12-24T18:00:00Z".
pub fn in_words(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Cron(t) => {
            let words = t.schedule.describe();
            format!("{} ({})", words.trim_end(), t.schedule.timezone().name())
        }
        Trigger::Interval(t) => format!("every {}", duration_in_words(t.every_s)),
        Trigger::Date(t) => format!("once, at {}", instant::format(&t.run_at)),
        Trigger::AnyOf(t) => {
            let parts: Vec<String> = t.triggers.iter().map(in_words).collect();
            format!("any of: {}", parts.join("; "))
        }
        Trigger::Calendared(t) => {
            let mut words = in_words(&t.base);
            if !t.refs.exclude.is_empty() {
                words.push_str(&format!(
                    ", except on calendars {}",
                    t.refs.exclude.join(", ")
                ));
            }
            if !t.refs.include_only.is_empty() {
                words.push_str(&format!(
                    ", only within calendars {}",
                    t.refs.include_only.join(", ")
                ));
            }
            let on = match t.refs.on_excluded {
                OnExcluded::Skip => "skipped",
                OnExcluded::NextAllowed => "moved to the next allowed day",
                OnExcluded::PreviousAllowed => "moved to the previous allowed day",
            };
            format!("{words} (excluded ones {on})")
        }
    }
}

/// `s` seconds as days, hours, minutes and seconds: "1 h 30 min".
pub fn duration_in_words(s: u64) -> String {
    let parts = [
        (s / 86_400, "d"),
        (s % 86_400 / 3_600, "h"),
        (s % 3_600 / 60, "min"),
        (s % 60, "s"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if words.is_empty() {
        "0 s".into()
    } else {
        words.join(" ")
    }
}

/// One coming fire time.
#[derive(Debug, Clone, PartialEq)]
pub struct FireTimeShown {
    pub at: DateTime<Utc>,
    /// The UTC offsets (seconds) before and at this fire time, when a
    /// daylight-saving change since the one before moved it.
    pub offset_change: Option<(i32, i32)>,
}

/// Up to `count` fire times from `first` on (the job's `next_run_at`).
/// Against the offset at `now` for the first, and the one before for the
/// others, a changed UTC offset marks a time a DST change moved.
pub fn coming_fire_times(
    trigger: &Trigger,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
    count: usize,
) -> Vec<FireTimeShown> {
    let tz = trigger.timezone();
    let mut before = utc_offset_s(now.min(first), tz);
    std::iter::once(first)
        .chain(trigger.fire_times_after(first))
        .take(count)
        .map(|at| {
            let offset = utc_offset_s(at, tz);
            let change = (offset != before).then_some((before, offset));
            before = offset;
            FireTimeShown {
                at,
                offset_change: change,
            }
        })
        .collect()
}

/// An offset in seconds as `UTC+09:00`.
pub fn offset_in_words(offset_s: i32) -> String {
    let sign = if offset_s < 0 { '-' } else { '+' };
    let abs = offset_s.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::trigger::TriggerInput;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        instant::parse(s).unwrap()
    }

    fn trigger(input: serde_json::Value, now: DateTime<Utc>) -> Trigger {
        serde_json::from_value::<TriggerInput>(input)
            .unwrap()
            .parse(now, "trigger")
            .unwrap()
    }

    #[test]
    fn triggers_in_words_name_their_zone_period_or_instant() {
        let now = utc("2026-12-02T00:00:00Z");
        let cron = trigger(
            json!({"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul"}),
            now,
        );
        assert_eq!(in_words(&cron), "At 02:30. (Asia/Seoul)");
        let every = trigger(json!({"type": "interval", "every_s": 5400}), now);
        assert_eq!(in_words(&every), "every 1 h 30 min");
        let once = trigger(
            json!({"type": "date", "run_at": "2026-12-24T18:00:00Z"}),
            now,
        );
        assert_eq!(in_words(&once), "once, at 2026-12-24T18:00:00Z");
        assert_eq!(duration_in_words(90_061), "1 d 1 h 1 min 1 s");
        assert_eq!(duration_in_words(0), "0 s");
        assert_eq!(offset_in_words(-4 * 3600), "UTC-04:00");
        assert_eq!(offset_in_words(5 * 3600 + 1800), "UTC+05:30");
    }

    #[test]
    fn the_fire_time_a_dst_change_moves_is_marked() {
        // 02:30 every day in New York: on 2027-03-14 the clocks skip from
        // 02:00 to 03:00, so that day fires at 03:00 EDT (07:00Z).
        let now = utc("2027-03-12T12:00:00Z");
        let cron = trigger(
            json!({"type": "cron", "expr": "30 2 * * *", "timezone": "America/New_York"}),
            now,
        );
        let first = cron.first_fire_time(now).unwrap();
        let shown = coming_fire_times(&cron, first, now, 4);
        let at: Vec<String> = shown.iter().map(|f| instant::format(&f.at)).collect();
        assert_eq!(
            at,
            [
                "2027-03-13T07:30:00Z",
                "2027-03-14T07:00:00Z",
                "2027-03-15T06:30:00Z",
                "2027-03-16T06:30:00Z"
            ]
        );
        let local = |t| crate::domain::trigger::local_rfc3339(t, cron.timezone());
        assert_eq!(local(shown[0].at), "2027-03-13T02:30:00-05:00");
        assert_eq!(local(shown[1].at), "2027-03-14T03:00:00-04:00");
        let marked: Vec<Option<(i32, i32)>> = shown.iter().map(|f| f.offset_change).collect();
        assert_eq!(marked, [None, Some((-5 * 3600, -4 * 3600)), None, None]);
    }

    #[test]
    fn utc_and_intervals_mark_nothing_and_a_date_fires_once() {
        let now = utc("2026-12-02T00:00:00Z");
        let every = trigger(json!({"type": "interval", "every_s": 3600}), now);
        let shown = coming_fire_times(&every, every.first_fire_time(now).unwrap(), now, 10);
        assert_eq!(shown.len(), 10);
        assert!(shown.iter().all(|f| f.offset_change.is_none()));
        let once = trigger(
            json!({"type": "date", "run_at": "2026-12-24T18:00:00Z"}),
            now,
        );
        assert_eq!(
            coming_fire_times(&once, utc("2026-12-24T18:00:00Z"), now, 10).len(),
            1
        );
    }
}
