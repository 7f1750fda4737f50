//! `any_of` (DESIGN.md §11.4): several cron and interval triggers as one,
//! the union of their fire times, an instant two of them share once. One
//! zone for the job: every cron of it is read there.

use super::Zone;
use chrono::{DateTime, Utc};

use super::Trigger;

/// Most triggers one `any_of` holds.
pub const MAX_PARTS: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct AnyOf {
    /// Cron and interval triggers only, without jitter of their own.
    pub triggers: Vec<Trigger>,
    pub timezone: Zone,
    pub jitter_s: u32,
}

impl AnyOf {
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.triggers
            .iter()
            .filter_map(|t| t.next_after(after))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::instant::parse;
    use crate::domain::trigger::TriggerInput;
    use serde_json::json;

    #[test]
    fn the_union_fires_a_shared_instant_once() {
        let input: TriggerInput = serde_json::from_value(json!({
            "type": "any_of", "timezone": "Europe/Berlin",
            "triggers": [
                {"type": "cron", "expr": "0 9 * * mon-fri"},
                {"type": "cron", "expr": "0 9,12 * * *"},
            ]
        }))
        .unwrap();
        let t = input
            .parse(parse("2026-03-06T00:00:00Z").unwrap(), "trigger")
            .unwrap();
        let times: Vec<String> = t
            .fire_times_after(parse("2026-03-06T00:00:00Z").unwrap())
            .take(4)
            .map(|t| t.to_rfc3339())
            .collect();
        // Friday 6 March, then the weekend's 09:00 and 12:00, in CET.
        assert_eq!(
            times,
            [
                "2026-03-06T08:00:00+00:00",
                "2026-03-06T11:00:00+00:00",
                "2026-03-07T08:00:00+00:00",
                "2026-03-07T11:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_part_in_another_zone_or_of_another_kind_is_refused() {
        let now = parse("2026-03-06T00:00:00Z").unwrap();
        for (parts, field) in [
            (
                json!([{"type": "cron", "expr": "0 9 * * *", "timezone": "Asia/Tokyo"}]),
                "trigger.triggers[0].timezone",
            ),
            (
                json!([{"type": "date", "run_at": "2027-01-01T00:00:00Z"}]),
                "trigger.triggers[0].type",
            ),
            (
                json!([{"type": "interval", "every_s": 60, "jitter_s": 5}]),
                "trigger.triggers[0].jitter_s",
            ),
            (json!([]), "trigger.triggers"),
        ] {
            let input: TriggerInput = serde_json::from_value(json!({
                "type": "any_of", "timezone": "Europe/Berlin", "triggers": parts
            }))
            .unwrap();
            let e = input.parse(now, "trigger").unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
