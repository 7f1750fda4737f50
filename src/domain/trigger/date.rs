//! Date triggers: one fire time.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq)]
pub struct DateTrigger {
    pub run_at: DateTime<Utc>,
}

impl DateTrigger {
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.run_at > after).then_some(self.run_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instant::parse;

    #[test]
    fn fires_once() {
        let t = DateTrigger {
            run_at: parse("2026-12-01T09:00:00Z").unwrap(),
        };
        assert_eq!(
            t.next_after(parse("2026-12-01T08:59:59Z").unwrap()),
            Some(t.run_at)
        );
        assert_eq!(t.next_after(t.run_at), None);
    }
}
