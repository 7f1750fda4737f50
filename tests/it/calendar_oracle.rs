//! A brute-force oracle for calendars (DESIGN.md §11.4), compared with a
//! calendared trigger's fire times over seeded random cases: a base trigger
//! in a zone, calendars of random rules in their own zones (some including
//! others), `exclude` or `include_only`, and each `on_excluded`.
//!
//! The oracle shares no code with Cronhook's calendars: it reads the rules
//! itself, decides whether an instant is allowed by converting it to wall
//! time (jiff's zone data: zone data is not what is under test) and
//! checking each rule, and rolls an excluded occurrence by walking days
//! (the same wall time, placed at the first instant whose wall time
//! reaches it) or whole minutes. The base trigger's own occurrences come
//! from Cronhook's trigger without calendars, which the cron oracle checks.
//!
//! `CALENDAR_ORACLE_SEED=n` and `CALENDAR_ORACLE_CASES=n` run other or more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cronhook::domain::calendar::{Book, CalendarInput};
use cronhook::domain::trigger::{Binding, Trigger, TriggerInput};
use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde_json::{Value, json};

use crate::cron_oracle::Rng;

const ZONES: [&str; 7] = [
    "UTC",
    "Europe/Berlin",
    "America/Santiago",
    "Australia/Lord_Howe",
    "America/New_York",
    "Asia/Kolkata",
    "Pacific/Auckland",
];

/// Windows that hold daylight-saving changes, a month's and a year's end.
const STARTS: [&str; 9] = [
    "2026-03-27T00:00:00Z",
    "2026-10-23T00:00:00Z",
    "2026-09-03T00:00:00Z",
    "2026-04-02T00:00:00Z",
    "2026-10-01T00:00:00Z",
    "2026-03-06T00:00:00Z",
    "2026-12-29T00:00:00Z",
    "2027-01-28T00:00:00Z",
    "2026-09-25T00:00:00Z",
];

const DAY: i64 = 86_400;
const ROLL_DAYS: i64 = 14;

// --- The oracle's calendars ----------------------------------------------

#[derive(Debug, Clone)]
enum Rule {
    Date(i32, u32, u32),
    Range((i32, u32, u32), (i32, u32, u32)),
    Annual(u32, u32),
    /// 0 = Monday.
    Weekdays(Vec<u32>),
    /// Minutes of the day.
    Window(u32, u32),
    /// `* a-b * * *`: the hours a to b.
    CronHours(u32, u32),
    Include(String),
}

#[derive(Debug, Clone)]
struct Cal {
    zone: TimeZone,
    rules: Vec<Rule>,
}

struct Wall {
    ymd: (i32, u32, u32),
    weekday: u32,
    minute_of_day: u32,
    hour: u32,
}

fn wall(zone: &TimeZone, t: i64) -> Wall {
    let dt = zone.to_datetime(Timestamp::from_second(t).unwrap());
    Wall {
        ymd: (dt.year().into(), dt.month() as u32, dt.day() as u32),
        weekday: dt.weekday().to_monday_zero_offset() as u32,
        minute_of_day: dt.hour() as u32 * 60 + dt.minute() as u32,
        hour: dt.hour() as u32,
    }
}

fn is_time_rule(r: &Rule) -> bool {
    matches!(r, Rule::Window(..) | Rule::CronHours(..))
}

/// Whether `t` is in calendar `id` (its included ones too), and whether
/// a time-of-day rule holds it.
fn member(cals: &BTreeMap<String, Cal>, id: &str, t: i64) -> (bool, bool) {
    let cal = &cals[id];
    let w = wall(&cal.zone, t);
    let (mut any, mut timely) = (false, false);
    for rule in &cal.rules {
        let hit = match rule {
            Rule::Date(y, m, d) => w.ymd == (*y, *m, *d),
            Rule::Range(a, b) => *a <= w.ymd && w.ymd <= *b,
            Rule::Annual(m, d) => (w.ymd.1, w.ymd.2) == (*m, *d),
            Rule::Weekdays(days) => days.contains(&w.weekday),
            Rule::Window(a, b) if a < b => *a <= w.minute_of_day && w.minute_of_day < *b,
            Rule::Window(a, b) => w.minute_of_day >= *a || w.minute_of_day < *b,
            Rule::CronHours(a, b) => *a <= w.hour && w.hour <= *b,
            Rule::Include(other) => {
                let (hit, time) = member(cals, other, t);
                timely |= time;
                hit
            }
        };
        any |= hit;
        timely |= hit && is_time_rule(rule);
    }
    (any, timely)
}

fn has_time_rules(cals: &BTreeMap<String, Cal>, id: &str) -> bool {
    cals[id].rules.iter().any(|r| match r {
        Rule::Include(other) => has_time_rules(cals, other),
        r => is_time_rule(r),
    })
}

struct Oracle {
    cals: BTreeMap<String, Cal>,
    exclude: Vec<String>,
    include_only: Vec<String>,
    on: &'static str,
    zone: TimeZone,
}

impl Oracle {
    /// None when allowed; else whether a time-of-day rule decided it.
    fn excluded(&self, t: i64) -> Option<bool> {
        let mut found = None;
        for id in &self.exclude {
            let (hit, time) = member(&self.cals, id, t);
            if hit {
                found = Some(found.unwrap_or(false) || time);
            }
        }
        if !self.include_only.is_empty()
            && !self
                .include_only
                .iter()
                .any(|id| member(&self.cals, id, t).0)
        {
            let time = self
                .include_only
                .iter()
                .any(|id| has_time_rules(&self.cals, id));
            return Some(found.unwrap_or(false) || time);
        }
        found
    }

    /// The first instant whose wall time in the trigger's zone reaches
    /// `target` (wall seconds read as UTC): walked by the minute.
    fn placed(&self, target: i64) -> i64 {
        let guess = target
            - i64::from(
                self.zone
                    .to_offset(Timestamp::from_second(target).unwrap())
                    .seconds(),
            );
        let mut t = guess - 4 * 3600;
        loop {
            let dt = self.zone.to_datetime(Timestamp::from_second(t).unwrap());
            let w = TimeZone::UTC.to_timestamp(dt).unwrap().as_second();
            if w >= target {
                return t;
            }
            t += 60;
        }
    }

    fn wall_seconds(&self, t: i64) -> i64 {
        let dt = self.zone.to_datetime(Timestamp::from_second(t).unwrap());
        TimeZone::UTC.to_timestamp(dt).unwrap().as_second()
    }

    /// What occurrence `n` (after `previous`) becomes: None when skipped.
    fn fate(&self, n: i64, previous: Option<i64>) -> Option<i64> {
        let Some(time) = self.excluded(n) else {
            return Some(n);
        };
        let allowed = |t: i64| self.excluded(t).is_none();
        match (self.on, time) {
            ("skip", _) => None,
            ("next_allowed", true) => {
                let mut t = n.div_euclid(60) * 60 + 60;
                while t <= n + ROLL_DAYS * DAY {
                    if allowed(t) {
                        return Some(t);
                    }
                    t += 60;
                }
                None
            }
            ("next_allowed", false) => (1..=ROLL_DAYS)
                .map(|d| self.placed(self.wall_seconds(n) + d * DAY))
                .find(|t| *t > n && allowed(*t)),
            ("previous_allowed", true) => {
                let floor = n.div_euclid(60) * 60;
                let mut t = if floor == n { floor - 60 } else { floor };
                while t >= n - ROLL_DAYS * DAY {
                    if previous.is_some_and(|p| t <= p) {
                        return None;
                    }
                    if allowed(t) {
                        return Some(t);
                    }
                    t -= 60;
                }
                None
            }
            ("previous_allowed", false) => {
                for d in 1..=ROLL_DAYS {
                    let t = self.placed(self.wall_seconds(n) - d * DAY);
                    if previous.is_some_and(|p| t <= p) {
                        return None;
                    }
                    if t < n && allowed(t) {
                        return Some(t);
                    }
                }
                None
            }
            _ => unreachable!(),
        }
    }
}

// --- Random cases ----------------------------------------------------------

fn ymd(t: i64) -> (i32, u32, u32) {
    let w = wall(&TimeZone::UTC, t);
    w.ymd
}

fn date_text((y, m, d): (i32, u32, u32)) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// A random rule near `start`, as the oracle reads it and as JSON.
fn rule(rng: &mut Rng, start: i64, earlier: &[String]) -> (Rule, Value) {
    let day = |rng: &mut Rng| ymd(start + (i64::from(rng.below(12)) - 3) * DAY);
    let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    match rng.below(if earlier.is_empty() { 6 } else { 7 }) {
        0 => {
            let d = day(rng);
            (Rule::Date(d.0, d.1, d.2), json!({"date": date_text(d)}))
        }
        1 => {
            let a = day(rng);
            let b = ymd(start + (i64::from(rng.below(4)) - 3) * DAY + 3 * DAY);
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            (
                Rule::Range(a, b),
                json!({"range": {"from": date_text(a), "to": date_text(b)}}),
            )
        }
        2 => {
            let d = day(rng);
            (
                Rule::Annual(d.1, d.2),
                json!({"annual": format!("{:02}-{:02}", d.1, d.2)}),
            )
        }
        3 => {
            let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let mut days: Vec<u32> = (0..7).filter(|_| rng.chance(25)).collect();
            if days.is_empty() || days.len() == 7 {
                days = vec![rng.below(7)];
            }
            let json =
                json!({"weekdays": days.iter().map(|d| names[*d as usize]).collect::<Vec<_>>()});
            (Rule::Weekdays(days), json)
        }
        4 => {
            let a = rng.below(48) * 30;
            let mut b = rng.below(48) * 30;
            if a == b {
                b = (a + 90) % 1440;
            }
            (
                Rule::Window(a, b),
                json!({"time_window": {"from": hm(a), "to": hm(b)}}),
            )
        }
        5 => {
            let a = rng.below(24);
            let b = (a + rng.below(6)).min(23);
            (
                Rule::CronHours(a, b),
                json!({"cron": format!("* {a}-{b} * * *")}),
            )
        }
        _ => {
            let other = earlier[rng.below(earlier.len() as u32) as usize].clone();
            (Rule::Include(other.clone()), json!({"calendar": other}))
        }
    }
}

fn base_trigger(rng: &mut Rng, zone: &str, start: i64) -> Value {
    let hours = [0, 1, 2, 3, 9, 12, 18, 23];
    let h = hours[rng.below(hours.len() as u32) as usize];
    let m = [0, 15, 30, 45][rng.below(4) as usize];
    match rng.below(5) {
        0 => json!({"type": "cron", "expr": format!("{m} {h} * * *"), "timezone": zone}),
        1 => {
            json!({"type": "cron", "expr": format!("{m} */{} * * *", [2, 3, 6][rng.below(3) as usize]), "timezone": zone})
        }
        2 => json!({"type": "cron", "expr": format!("{m} {h} * * 1-5"), "timezone": zone}),
        3 => json!({"type": "cron", "expr": format!("{m} {h} L,1,15 * *"), "timezone": zone}),
        _ => {
            let every = [3_600, 5_400, 21_600, 86_400][rng.below(4) as usize];
            let anchor =
                DateTime::from_timestamp(start - DAY * 40 + i64::from(rng.below(3_600)) * 60, 0)
                    .unwrap();
            json!({"type": "interval", "every_s": every, "start_at": anchor.to_rfc3339()})
        }
    }
}

fn trigger(input: Value, book: &Book) -> Trigger {
    let input: TriggerInput = serde_json::from_value(input).unwrap();
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    input
        .parse(now, "trigger")
        .unwrap()
        .bind(
            &Binding {
                seed: "oracle".into(),
                calendars: Arc::new(book.clone()),
            },
            "trigger",
        )
        .unwrap()
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

/// One case: the implementation's fire times in the window against the
/// oracle's; a description of the case when they differ.
fn case(rng: &mut Rng, database: &TimeZoneDatabase) -> Result<usize, String> {
    let start_text = STARTS[rng.below(STARTS.len() as u32) as usize];
    let start =
        start_text.parse::<DateTime<Utc>>().unwrap().timestamp() + i64::from(rng.below(48)) * 3600;
    let end = start + 4 * DAY;
    let zone_name = ZONES[rng.below(ZONES.len() as u32) as usize];
    let mut cals = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for i in 0..1 + rng.below(3) {
        let id = format!("c{i}");
        let zone = ZONES[rng.below(ZONES.len() as u32) as usize];
        let (rules, json): (Vec<Rule>, Vec<Value>) = (0..1 + rng.below(3))
            .map(|_| rule(rng, start, &ids))
            .unzip();
        inputs.push(json!({"id": id, "timezone": zone, "rules": json}));
        cals.insert(
            id.clone(),
            Cal {
                zone: database.get(zone).unwrap(),
                rules,
            },
        );
        ids.push(id);
    }
    let book: Book = inputs
        .iter()
        .map(|v| {
            let c = serde_json::from_value::<CalendarInput>(v.clone())
                .unwrap()
                .parse(None)
                .unwrap();
            (c.id.clone(), c)
        })
        .collect();
    let (exclude, include_only): (Vec<String>, Vec<String>) = if rng.chance(25) {
        (
            Vec::new(),
            vec![ids[rng.below(ids.len() as u32) as usize].clone()],
        )
    } else {
        let chosen: BTreeSet<String> = ids.iter().filter(|_| rng.chance(60)).cloned().collect();
        let chosen = if chosen.is_empty() {
            vec![ids[0].clone()]
        } else {
            chosen.into_iter().collect()
        };
        (chosen, Vec::new())
    };
    let on = ["skip", "next_allowed", "previous_allowed"][rng.below(3) as usize];
    let base = base_trigger(rng, zone_name, start);
    let plain = trigger(base.clone(), &book);
    let mut with = base.clone();
    with["calendars"] =
        json!({"exclude": exclude, "include_only": include_only, "on_excluded": on});
    let calendared = trigger(with.clone(), &book);

    let oracle = Oracle {
        cals,
        exclude,
        include_only,
        on,
        zone: database.get(plain.timezone().name()).unwrap(),
    };
    // Nominal occurrences from a fortnight and a day before the window to
    // its end (later ones cannot roll back into it past their previous).
    let mut nominals = Vec::new();
    let mut cursor = at(start - (ROLL_DAYS + 1) * DAY);
    while let Some(n) = plain
        .next_after(cursor)
        .filter(|n| n.timestamp() <= end + (ROLL_DAYS + 1) * DAY)
    {
        nominals.push(n.timestamp());
        cursor = n;
    }
    let mut expected = BTreeSet::new();
    for (i, n) in nominals.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| nominals[p]);
        if let Some(t) = oracle.fate(*n, previous)
            && t > start
            && t <= end
        {
            expected.insert(t);
        }
    }
    let mut got = Vec::new();
    let mut cursor = at(start);
    while let Some(t) = calendared
        .next_after(cursor)
        .filter(|t| t.timestamp() <= end)
    {
        got.push(t.timestamp());
        cursor = t;
    }
    let expected: Vec<i64> = expected.into_iter().collect();
    if got == expected {
        Ok(got.len())
    } else {
        let show = |v: &[i64]| v.iter().map(|t| at(*t).to_rfc3339()).collect::<Vec<_>>();
        Err(format!(
            "trigger {with}\ncalendars {}\nwindow {} .. {}\nimplementation {:?}\noracle         {:?}",
            serde_json::to_string(&inputs).unwrap(),
            at(start),
            at(end),
            show(&got),
            show(&expected),
        ))
    }
}

#[test]
fn calendared_fire_times_agree_with_a_brute_force_oracle() {
    let seed: u64 = std::env::var("CALENDAR_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_204);
    let cases: usize = std::env::var("CALENDAR_ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let database = TimeZoneDatabase::bundled();
    let mut rng = Rng(seed);
    let mut fired = 0;
    let mut failures = Vec::new();
    for i in 0..cases {
        match case(&mut rng, &database) {
            Ok(n) => fired += n,
            Err(e) => failures.push(format!("case {i}:\n{e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases disagree (seed {seed}); the first:\n{}",
        failures.len(),
        failures[0]
    );
    // Not vacuous: the cases fire, and some are excluded or moved.
    assert!(fired > cases, "only {fired} fire times in {cases} cases");
}
