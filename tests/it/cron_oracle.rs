//! A brute-force oracle for cron fire times, compared with
//! `CronSchedule::next_after` over random expressions, zones and windows.
//!
//! The oracle shares nothing with croner or Cronhook's cron module: it
//! reads the expression into sets of allowed values per field itself, walks
//! real instants (every minute, or every second for six fields) through a
//! window, converts each to wall time in the zone (jiff's zone data: zone
//! data is not what is under test) and checks the fields, with cronie's
//! day rule and DESIGN.md §3's daylight-saving rules:
//!
//! - periodic (minute or hour field starts with `*`): every instant whose
//!   wall time matches;
//! - fixed-time: each matching wall time once, at the first instant whose
//!   wall time reaches it: its one occurrence, the first of two, or the
//!   first instant after a gap.
//!
//! `CRON_ORACLE_SEED=n` and `CRON_ORACLE_CASES=n` run other or more cases.

use chrono::{DateTime, Utc};
use cronhook::domain::trigger::CronSchedule;
use cronhook::domain::trigger::Zone;
use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

// --- The oracle's reading of an expression ------------------------------

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

#[derive(Debug, Default)]
struct Pattern {
    /// Six fields (leading seconds); else second 0 only.
    with_seconds: bool,
    seconds: Vec<bool>,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    months: Vec<bool>,
    /// Day-of-month: plain days, `L`, `LW`, and the days of `nW`.
    days: Vec<bool>,
    last_day: bool,
    last_weekday: bool,
    nearest_weekday: Vec<u32>,
    /// Day-of-week, 0 = Sunday: plain days, `d#k`, `dL`.
    weekdays: Vec<bool>,
    nth_weekday: Vec<(u32, u32)>,
    last_of_weekday: Vec<u32>,
    /// cronie: a day field starting with `*` (or `?`) is unrestricted, and
    /// then both day fields must match; otherwise either.
    both_days: bool,
    periodic: bool,
}

fn number(text: &str, names: &[&str], first: u32) -> u32 {
    let lower = text.to_ascii_lowercase();
    match names.iter().position(|n| *n == lower) {
        Some(i) => i as u32 + first,
        None => text
            .parse()
            .unwrap_or_else(|_| panic!("oracle: bad value {text:?}")),
    }
}

/// Plain list items (`*`, `n`, `a-b`, `*/s`, `a-b/s`) into `set`.
fn plain_item(item: &str, set: &mut [bool], lo: u32, hi: u32, names: &[&str], first: u32) {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, step.parse::<u32>().unwrap()),
        None => (item, 1),
    };
    let (start, end) = if range == "*" {
        (lo, hi)
    } else if let Some((a, b)) = range.split_once('-') {
        let a = number(a, names, first);
        let mut b = number(b, names, first);
        // Day-of-week: `sun` ending a range is 7, unless it starts on Sunday.
        if names == DAYS && b == 0 && a > 0 {
            b = 7;
        }
        (a, b)
    } else {
        let n = number(range, names, first);
        (n, n)
    };
    let mut v = start;
    while v <= end {
        set[v as usize] = true;
        v += step;
    }
}

fn plain_field(text: &str, lo: u32, hi: u32, names: &[&str], first: u32) -> Vec<bool> {
    let mut set = vec![false; hi as usize + 1];
    for item in text.split(',') {
        plain_item(item, &mut set, lo, hi, names, first);
    }
    set
}

fn read(expr: &str) -> Pattern {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let with_seconds = fields.len() == 6;
    let (sec, min, hour, dom, mon, dow) = match fields[..] {
        [sec, min, hour, dom, mon, dow] => (sec, min, hour, dom, mon, dow),
        [min, hour, dom, mon, dow] => ("0", min, hour, dom, mon, dow),
        _ => panic!("oracle: {expr:?} has neither 5 nor 6 fields"),
    };
    let mut p = Pattern {
        with_seconds,
        seconds: plain_field(sec, 0, 59, &[], 0),
        minutes: plain_field(min, 0, 59, &[], 0),
        hours: plain_field(hour, 0, 23, &[], 0),
        months: plain_field(mon, 1, 12, &MONTHS, 1),
        days: vec![false; 32],
        weekdays: vec![false; 8],
        periodic: min.starts_with('*') || hour.starts_with('*'),
        both_days: dom.starts_with('*') || dom == "?" || dow.starts_with('*') || dow == "?",
        ..Pattern::default()
    };
    let dom = if dom == "?" { "*" } else { dom };
    for item in dom.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            p.last_day = true;
        } else if upper == "LW" {
            p.last_weekday = true;
        } else if let Some(n) = upper.strip_suffix('W') {
            p.nearest_weekday.push(n.parse().unwrap());
        } else {
            plain_item(item, &mut p.days, 1, 31, &[], 0);
        }
    }
    let dow = if dow == "?" { "*" } else { dow };
    for item in dow.split(',') {
        if let Some((d, k)) = item.split_once('#') {
            let d = number(d, &DAYS, 0) % 7;
            if k.eq_ignore_ascii_case("l") {
                p.last_of_weekday.push(d);
            } else {
                p.nth_weekday.push((d, k.parse().unwrap()));
            }
        } else if let Some(d) = item.strip_suffix(['L', 'l']) {
            p.last_of_weekday.push(number(d, &DAYS, 0) % 7);
        } else {
            plain_item(item, &mut p.weekdays, 0, 7, &DAYS, 0);
        }
    }
    if p.weekdays[7] {
        p.weekdays[0] = true;
    }
    p
}

// --- Calendar ------------------------------------------------------------

fn leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 = Sunday, by Zeller's congruence (independent of any date library).
fn weekday(y: i32, m: u32, d: u32) -> u32 {
    let (y, m) = if m < 3 { (y - 1, m + 12) } else { (y, m) };
    let (k, j) = (y.rem_euclid(100), y.div_euclid(100));
    let h = (d as i32 + (13 * (m as i32 + 1)) / 5 + k + k / 4 + j / 4 + 5 * j).rem_euclid(7);
    ((h + 6) % 7) as u32 // Zeller: 0 = Saturday
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Wall {
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
}

impl Pattern {
    fn day_of_month(&self, w: &Wall) -> bool {
        let dim = days_in_month(w.y, w.mo);
        if self.days[w.d as usize] || (self.last_day && w.d == dim) {
            return true;
        }
        let weekday_near = |n: u32| -> Option<u32> {
            if n > dim {
                return None; // `31W` in a 30-day month: nothing that month
            }
            Some(match weekday(w.y, w.mo, n) {
                6 if n == 1 => 3,
                6 => n - 1,
                0 if n == dim => n - 2,
                0 => n + 1,
                _ => n,
            })
        };
        if self.last_weekday && weekday_near(dim) == Some(w.d) {
            return true;
        }
        self.nearest_weekday
            .iter()
            .any(|n| weekday_near(*n) == Some(w.d))
    }

    fn day_of_week(&self, w: &Wall) -> bool {
        let wd = weekday(w.y, w.mo, w.d);
        let dim = days_in_month(w.y, w.mo);
        self.weekdays[wd as usize]
            || self
                .nth_weekday
                .iter()
                .any(|(d, k)| *d == wd && (w.d - 1) / 7 + 1 == *k)
            || self
                .last_of_weekday
                .iter()
                .any(|d| *d == wd && w.d + 7 > dim)
    }

    fn matches(&self, w: &Wall) -> bool {
        if !(self.seconds[w.s as usize]
            && self.minutes[w.mi as usize]
            && self.hours[w.h as usize]
            && self.months[w.mo as usize])
        {
            return false;
        }
        let (dom, dow) = (self.day_of_month(w), self.day_of_week(w));
        if self.both_days {
            dom && dow
        } else {
            dom || dow
        }
    }
}

// --- Walking real time ----------------------------------------------------

fn wall_at(zone: &TimeZone, t: i64) -> Wall {
    let dt = zone.to_datetime(Timestamp::from_second(t).unwrap());
    Wall {
        y: dt.year().into(),
        mo: dt.month() as u32,
        d: dt.day() as u32,
        h: dt.hour() as u32,
        mi: dt.minute() as u32,
        s: dt.second() as u32,
    }
}

/// Seconds since the epoch of a wall time read as UTC: for stepping
/// through wall times and comparing them.
fn wall_seconds(w: &Wall) -> i64 {
    let days_before_year = |y: i64| {
        let y = y - 1;
        365 * y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)
    };
    let mut days = days_before_year(w.y.into()) - days_before_year(1970);
    for m in 1..w.mo {
        days += i64::from(days_in_month(w.y, m));
    }
    days += i64::from(w.d) - 1;
    days * 86_400 + i64::from(w.h * 3600 + w.mi * 60 + w.s)
}

fn wall_from_seconds(s: i64) -> Wall {
    let (mut days, rest) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let mut y = 1970;
    loop {
        let len = if leap(y) { 366 } else { 365 };
        if days < 0 {
            y -= 1;
            days += if leap(y) { 366 } else { 365 };
        } else if days >= len {
            days -= len;
            y += 1;
        } else {
            break;
        }
    }
    let mut mo = 1;
    while days >= i64::from(days_in_month(y, mo)) {
        days -= i64::from(days_in_month(y, mo));
        mo += 1;
    }
    Wall {
        y,
        mo,
        d: days as u32 + 1,
        h: (rest / 3600) as u32,
        mi: (rest / 60 % 60) as u32,
        s: (rest % 60) as u32,
    }
}

/// The oracle's fire times in `(from, to]`, seconds since the epoch.
fn oracle(p: &Pattern, zone: &TimeZone, from: i64, to: i64) -> Vec<i64> {
    let step = if p.with_seconds { 1 } else { 60 };
    // A fixed-time pattern needs the highest wall time reached before the
    // window, so the walk starts earlier: a day, or three hours for six
    // fields (no repeated stretch in these zones lasts over two).
    let begin = match (p.periodic, p.with_seconds) {
        (true, _) => from,
        (false, false) => from - 86_400,
        (false, true) => from - 3 * 3600,
    };
    let mut out = Vec::new();
    let mut reached = wall_seconds(&wall_at(zone, begin));
    let mut t = begin - begin.rem_euclid(step) + step;
    while t <= to {
        let w = wall_at(zone, t);
        if p.periodic {
            if p.matches(&w) {
                out.push(t);
            }
        } else {
            let now = wall_seconds(&w);
            // Every wall time first reached at `t`: one normally, a gap's
            // worth after a jump forward, none while a repeat catches up.
            let mut fire = false;
            let mut v = reached - reached.rem_euclid(step) + step;
            while v <= now && !fire {
                fire = p.matches(&wall_from_seconds(v));
                v += step;
            }
            if fire && t > from {
                out.push(t);
            }
            reached = reached.max(now);
        }
        t += step;
    }
    out
}

fn implementation(s: &CronSchedule, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t: DateTime<Utc> = DateTime::from_timestamp(from, 0).unwrap();
    while let Some(next) = s.next_after(t) {
        assert!(next > t, "{}: {next} is not after {t}", s.expr());
        if next.timestamp() > to {
            break;
        }
        out.push(next.timestamp());
        t = next;
    }
    out
}

// --- Random expressions, zones and windows --------------------------------

/// splitmix64: small, seeded, and ours.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u32) as usize]
    }
}

/// A value, as a number or (where the field has them) a name.
fn value(rng: &mut Rng, v: u32, names: &[&str], first: u32) -> String {
    if !names.is_empty() && rng.chance(40) && (v as usize) < names.len() + first as usize {
        let name = names[(v - first) as usize % names.len()];
        if rng.chance(20) {
            name.to_uppercase()
        } else {
            name.to_string()
        }
    } else {
        v.to_string()
    }
}

/// `*`, `*/s`, `n`, `a-b` or `a-b/s` in `lo..=hi`, biased to `near`.
fn plain(rng: &mut Rng, lo: u32, hi: u32, near: &[u32], names: &[&str], first: u32) -> String {
    let pick = |rng: &mut Rng| {
        if !near.is_empty() && rng.chance(60) {
            near[rng.below(near.len() as u32) as usize].clamp(lo, hi)
        } else {
            rng.between(lo, hi)
        }
    };
    match rng.below(10) {
        0 | 1 => "*".into(),
        2 => format!("*/{}", rng.between(1, (hi - lo).max(1) + 2)),
        3..=5 => {
            let v = pick(rng);
            value(rng, v, names, first)
        }
        6 | 7 => {
            let a = pick(rng);
            let b = rng.between(a, hi.min(a + 6));
            let (a, b) = (value(rng, a, names, first), value(rng, b, names, first));
            format!("{a}-{b}")
        }
        _ => {
            let a = rng.between(lo, hi);
            let b = rng.between(a, hi);
            format!("{a}-{b}/{}", rng.between(1, 12))
        }
    }
}

fn list(rng: &mut Rng, item: impl Fn(&mut Rng) -> String) -> String {
    let n = match rng.below(10) {
        0..=6 => 1,
        7 | 8 => 2,
        _ => 3,
    };
    (0..n).map(|_| item(rng)).collect::<Vec<_>>().join(",")
}

fn expression(rng: &mut Rng, near_hours: &[u32], month: u32, dom_near: u32) -> String {
    let star_or = |rng: &mut Rng, percent: u32, f: &dyn Fn(&mut Rng) -> String| {
        if rng.chance(percent) {
            "*".to_string()
        } else {
            f(rng)
        }
    };
    let seconds = rng.chance(25).then(|| {
        star_or(rng, 30, &|rng| {
            list(rng, |rng| plain(rng, 0, 59, &[0, 30, 59], &[], 0))
        })
    });
    let minute = list(rng, |rng| plain(rng, 0, 59, &[0, 15, 30, 45, 59], &[], 0));
    let hour = star_or(rng, 25, &|rng| {
        list(rng, |rng| plain(rng, 0, 23, near_hours, &[], 0))
    });
    let dom = star_or(rng, 50, &|rng| {
        if rng.chance(5) {
            return "?".into();
        }
        list(rng, |rng| match rng.below(12) {
            0 | 1 => "L".into(),
            2 | 3 => "LW".into(),
            4 | 5 => "L,LW".into(),
            6 => format!("{}W", rng.between(dom_near.max(3) - 2, 31)),
            _ => plain(rng, 1, 31, &[dom_near, dom_near + 1, 1, 31], &[], 0),
        })
    });
    let mon = star_or(rng, 60, &|rng| {
        list(rng, |rng| plain(rng, 1, 12, &[month], &MONTHS, 1))
    });
    let dow = star_or(rng, 55, &|rng| {
        if rng.chance(5) {
            return "?".into();
        }
        list(rng, |rng| match rng.below(12) {
            0 => {
                let (day, k) = (rng.between(0, 7), rng.between(1, 5));
                format!("{}#{k}", value(rng, day, &DAYS, 0))
            }
            1 => {
                let day = rng.between(0, 6);
                format!("{}L", value(rng, day, &DAYS, 0))
            }
            2 => rng
                .pick(&[
                    "fri-sun", "sun-sun", "0-sun", "sat-sun", "mon-sun", "sun-sat",
                ])
                .to_string(),
            _ => plain(rng, 0, 7, &[0, 6, 7], &DAYS, 0),
        })
    });
    let five = format!("{minute} {hour} {dom} {mon} {dow}");
    match seconds {
        Some(s) => format!("{s} {five}"),
        None => five,
    }
}

const ZONES: [&str; 10] = [
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "America/Havana",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "America/New_York",
    "Europe/Berlin",
    "UTC",
];

#[test]
fn cron_fire_times_agree_with_a_brute_force_oracle() {
    let seed = std::env::var("CRON_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let cases: u32 = std::env::var("CRON_ORACLE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let mut rng = Rng(seed);
    let db = TimeZoneDatabase::bundled();
    let (mut compared, mut fires, mut refused) = (0, 0, 0);
    let began = std::time::Instant::now();
    for case in 0..cases {
        let name = ZONES[rng.below(ZONES.len() as u32) as usize];
        let zone = db.get(name).unwrap();
        let tz: Zone = name.parse().unwrap();
        // Around one of the zone's transitions between 1990 and 2120 (past
        // chrono-tz's 2099 too), around the end of a month (L, LW, nW), or
        // anywhere in that span.
        let start = 631_152_000 + i64::from(rng.below(130)) * 31_556_952; // 1990 + n years
        let transition = zone
            .following(Timestamp::from_second(start).unwrap())
            .nth(rng.below(3) as usize);
        let anchor = match (rng.below(100), transition) {
            (0..70, Some(transition)) => transition.timestamp().as_second(),
            (70..90, _) => {
                let w = wall_from_seconds(start + i64::from(rng.below(365 * 86_400)));
                let end = Wall {
                    d: days_in_month(w.y, w.mo),
                    h: 12,
                    ..w
                };
                wall_seconds(&end)
            }
            _ => start + i64::from(rng.below(365 * 86_400)),
        };
        let local = wall_at(&zone, anchor);
        let near_hours: Vec<u32> = (0..3).map(|d| (local.h + 23 + d) % 24).collect();
        let expr = expression(&mut rng, &near_hours, local.mo, local.d);
        let p = read(&expr);
        let (from, to) = if p.with_seconds {
            let from = anchor - i64::from(rng.below(3 * 3600));
            (from, from + i64::from(rng.between(3600, 4 * 3600)))
        } else {
            let from = anchor - i64::from(rng.below(36 * 3600));
            (from, from + i64::from(rng.between(6 * 3600, 60 * 3600)))
        };
        let want = oracle(&p, &zone, from, to);
        let context = || {
            format!(
                "case {case} (CRON_ORACLE_SEED={seed}): {expr:?} in {name}, \
                 after {} until {}",
                DateTime::from_timestamp(from, 0).unwrap(),
                DateTime::from_timestamp(to, 0).unwrap()
            )
        };
        let schedule = match CronSchedule::parse(&expr, tz) {
            Ok(schedule) => schedule,
            Err(e) => {
                // Only "never fires" may refuse what the generator writes,
                // and then the oracle must agree for this window.
                assert!(e.starts_with("never fires"), "{}: {e}", context());
                assert_eq!(want, [] as [i64; 0], "{}: {e}", context());
                refused += 1;
                continue;
            }
        };
        let got = implementation(&schedule, from, to);
        let show = |v: &[i64]| -> Vec<String> {
            v.iter()
                .map(|t| DateTime::from_timestamp(*t, 0).unwrap().to_rfc3339())
                .collect()
        };
        assert_eq!(show(&got), show(&want), "{}", context());
        compared += 1;
        fires += want.len();
    }
    println!(
        "{compared} compared ({fires} fire times), {refused} refused as never firing, in {:?}",
        began.elapsed()
    );
    assert!(compared > cases / 2);
    assert!(fires > cases as usize);
}

/// The oracle's own parts, at fixed points: if these were wrong, agreeing
/// with it would mean nothing.
#[test]
fn the_oracle_reads_and_counts_correctly() {
    assert_eq!(weekday(2026, 6, 15), 1); // a Monday
    assert_eq!(weekday(2100, 3, 14), 0); // a Sunday
    assert_eq!(weekday(2000, 2, 29), 2); // a Tuesday
    for s in [0, 951_782_400, 4_102_444_799, -86_400] {
        assert_eq!(wall_seconds(&wall_from_seconds(s)), s);
    }
    let utc = TimeZone::UTC;
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap().timestamp();
    // cronie's day rule: the Mondays that are odd days.
    let got = oracle(
        &read("0 0 */2 * 1"),
        &utc,
        at("2026-06-02T00:00:00Z"),
        at("2026-07-14T00:00:00Z"),
    );
    assert_eq!(
        got,
        [
            at("2026-06-15T00:00:00Z"),
            at("2026-06-29T00:00:00Z"),
            at("2026-07-13T00:00:00Z")
        ]
    );
    // `sun` ending a range.
    let p = read("0 0 * * fri-sun");
    assert_eq!(
        p.weekdays,
        [true, false, false, false, false, true, true, true]
    );
    let p = read("0 0 * * sun-sun");
    assert_eq!(
        p.weekdays,
        [true, false, false, false, false, false, false, false]
    );
    // New York's spring gap: a fixed time fires once after it, an hourly
    // pattern skips it; its fall overlap: first pass only, or both.
    let ny = TimeZoneDatabase::bundled().get("America/New_York").unwrap();
    let spring = (at("2026-03-08T05:00:00Z"), at("2026-03-08T09:00:00Z"));
    assert_eq!(
        oracle(&read("30 2 * * *"), &ny, spring.0, spring.1),
        [at("2026-03-08T07:00:00Z")]
    );
    assert_eq!(
        oracle(&read("0 * * * *"), &ny, spring.0, spring.1),
        [
            at("2026-03-08T06:00:00Z"), // 01:00 EST
            at("2026-03-08T07:00:00Z"), // 03:00 EDT: no 02:00
            at("2026-03-08T08:00:00Z"),
            at("2026-03-08T09:00:00Z")
        ]
    );
    let fall = (at("2026-11-01T04:00:00Z"), at("2026-11-01T08:00:00Z"));
    assert_eq!(
        oracle(&read("30 1 * * *"), &ny, fall.0, fall.1),
        [at("2026-11-01T05:30:00Z")]
    );
    assert_eq!(
        oracle(&read("30 * * * *"), &ny, fall.0, fall.1),
        [
            at("2026-11-01T04:30:00Z"),
            at("2026-11-01T05:30:00Z"),
            at("2026-11-01T06:30:00Z"),
            at("2026-11-01T07:30:00Z")
        ]
    );
}
