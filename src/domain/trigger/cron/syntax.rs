//! Cronhook's cron dialect (docs/triggers.md), read field by field.
//!
//! Every field is read here, so that an error names its field and speaks
//! of what was written, and what croner gets is plain numbers: croner's
//! own reading replaces names anywhere in the pattern (`jan` in the minute
//! field was 1, `-SUN` was `-7`) and reports on its rewritten text.
//!
//! - second and minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or
//!   `jan`-`dec`, day-of-week 0-7 (0 and 7 are Sunday) or `sun`-`sat`;
//!   names only in their own field, in any case.
//! - a field is a list of items: `*`, `n`, `a-b`, `*/s` or `a-b/s`.
//!   `sun` ending a range is 7 (`fri-sun`), unless the range starts on
//!   Sunday (`sun-sun`, `0-sun`).
//! - day-of-month also takes `L` (last day), `LW` (last weekday) and `nW`
//!   (the weekday nearest the n-th, within the month); day-of-week takes
//!   `d#k` (the k-th such day of the month, 1-5), `dL` or `d#L` (the last).
//! - `?` as a whole day-of-month or day-of-week field means `*`.

use crate::domain::error::Reason;
use std::fmt::Write as _;

/// The macros, as the expressions they stand for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const YEAR_HINT: &str =
    "a year field is not supported, and six fields mean a leading seconds field";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

/// A six-field expression's fields; a five-field one has the last five.
const FIELDS: [Field; 6] = [
    Field::Second,
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// What a value of this field may be, for messages.
    fn expected(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or jan-dec",
            Field::DayOfWeek => "0-7 or sun-sat",
        }
    }
}

/// One item of a field's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// `lo..=hi` every `step`: `*`, `n`, `a-b` and their `/s` forms.
    Range { lo: u32, hi: u32, step: u32 },
    /// Day-of-month `L`.
    Last,
    /// Day-of-month `LW`.
    LastWeekday,
    /// Day-of-month `nW`.
    NearestWeekday(u32),
    /// Day-of-week `d#k`, k in 1..=5.
    Nth(u32, u32),
    /// Day-of-week `dL` or `d#L`.
    LastOf(u32),
}

/// An expression read into what croner evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    /// Patterns whose matches are united: one, or two when day-of-month
    /// lists both `L` and `LW` (croner keeps one flag for each, and with
    /// both set matches the last weekday only).
    pub patterns: Vec<String>,
    /// Minute or hour starts with `*` (DESIGN.md §3).
    pub periodic: bool,
    /// cronie's day rule: a day must match both day fields when either
    /// starts with `*` (or is `?`), either one otherwise.
    pub both_days: bool,
}

/// Reads `expr`: 5 fields, 6 with leading seconds, or a macro. The error
/// names the field it is about.
pub(super) fn parse(expr: &str) -> Result<Parsed, Reason> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("must not be empty".into());
    }
    let expanded = if expr.starts_with('@') {
        let lower = expr.to_ascii_lowercase();
        match MACROS.iter().find(|(name, _)| *name == lower) {
            Some((_, pattern)) => *pattern,
            None => {
                let names: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                return Err(format!(
                    "unknown macro {expr:?}; expected one of {}",
                    names.join(", ")
                )
                .into());
            }
        }
    } else {
        expr
    };

    let texts: Vec<&str> = expanded.split_whitespace().collect();
    if texts.len() != 5 && texts.len() != 6 {
        let hint = if texts.len() == 7 {
            format!("; {YEAR_HINT}")
        } else {
            String::new()
        };
        return Err(format!(
            "expected 5 or 6 fields (6 with leading seconds), got {}{hint}",
            texts.len()
        )
        .into());
    }
    let six = texts.len() == 6;
    let fields = &FIELDS[6 - texts.len()..];
    let mut items = Vec::with_capacity(6);
    for (&field, &text) in fields.iter().zip(&texts) {
        let read = read_field(field, text).map_err(|reason| {
            let hint = if six && field == Field::DayOfWeek && looks_like_a_year(text) {
                format!("; {YEAR_HINT}")
            } else {
                String::new()
            };
            format!("{} field {text:?}: {reason}{hint}", field.name())
        })?;
        items.push(read);
    }

    let text_of = |field: Field| texts[fields.iter().position(|f| *f == field).unwrap_or(0)];
    let periodic = text_of(Field::Minute).starts_with('*') || text_of(Field::Hour).starts_with('*');
    let unrestricted = |text: &str| text.starts_with('*') || text == "?";
    let both_days =
        unrestricted(text_of(Field::DayOfMonth)) || unrestricted(text_of(Field::DayOfWeek));

    let render = |items: &[Option<Vec<Item>>]| -> String {
        let mut out = String::new();
        for items in items {
            if !out.is_empty() {
                out.push(' ');
            }
            render_field(&mut out, items.as_deref());
        }
        out
    };
    let dom = fields
        .iter()
        .position(|f| *f == Field::DayOfMonth)
        .unwrap_or(0);
    let patterns = match &items[dom] {
        Some(days) if days.contains(&Item::Last) && days.contains(&Item::LastWeekday) => {
            let mut without = items.clone();
            without[dom] = Some(
                days.iter()
                    .copied()
                    .filter(|i| *i != Item::LastWeekday)
                    .collect(),
            );
            let mut alone = items.clone();
            alone[dom] = Some(vec![Item::LastWeekday]);
            vec![render(&without), render(&alone)]
        }
        _ => vec![render(&items)],
    };
    Ok(Parsed {
        patterns,
        periodic,
        both_days,
    })
}

/// A plain number of four or more digits, written where a year would be.
fn looks_like_a_year(text: &str) -> bool {
    text.len() >= 4 && text.bytes().all(|b| b.is_ascii_digit())
}

/// One field: `None` for `*` (and `?`), else its items.
fn read_field(field: Field, text: &str) -> Result<Option<Vec<Item>>, Reason> {
    if text == "*" {
        return Ok(None);
    }
    if text == "?" && matches!(field, Field::DayOfMonth | Field::DayOfWeek) {
        return Ok(None);
    }
    if field == Field::DayOfWeek && text.contains('+') {
        return Err(
            "\"+\" is not crontab syntax; the two day fields combine by \
                    cronie's rule (both must match when either starts with *)"
                .into(),
        );
    }
    text.split(',')
        .map(|item| read_item(field, item))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn read_item(field: Field, item: &str) -> Result<Item, Reason> {
    if item.is_empty() {
        return Err("empty list item".into());
    }
    let upper = item.to_ascii_uppercase();
    match field {
        Field::DayOfMonth => {
            if upper == "L" {
                return Ok(Item::Last);
            }
            if upper == "LW" {
                return Ok(Item::LastWeekday);
            }
            if let Some(day) = upper.strip_suffix('W') {
                if day.is_empty() {
                    return Err("W needs a day: 15W is the weekday nearest the 15th".into());
                }
                if day.bytes().all(|b| b.is_ascii_digit()) {
                    return value(field, day).map(Item::NearestWeekday);
                }
            }
        }
        Field::DayOfWeek => {
            if upper == "L" {
                return Err("L alone is not a day of the week: write 5L for the last \
                            Friday of the month (the last day of the month is L in \
                            the day-of-month field)"
                    .into());
            }
            if let Some((day, nth)) = item.split_once('#') {
                let day = weekday(day, "5#2")?;
                if nth.eq_ignore_ascii_case("L") {
                    return Ok(Item::LastOf(day));
                }
                return match nth.parse::<u32>() {
                    Ok(k) if (1..=5).contains(&k) && nth.bytes().all(|b| b.is_ascii_digit()) => {
                        Ok(Item::Nth(day, k))
                    }
                    _ => Err(format!(
                        "after # comes 1-5 (the k-th such day of the month) or L (the last), \
                         got {nth:?}"
                    )
                    .into()),
                };
            }
            if let Some(day) = item.strip_suffix(['L', 'l'])
                && (day.bytes().all(|b| b.is_ascii_digit())
                    || DAYS.contains(&day.to_ascii_lowercase().as_str()))
            {
                return weekday(day, "5L").map(Item::LastOf);
            }
        }
        _ => {}
    }

    let (base, step) = match item.split_once('/') {
        None => (item, None),
        Some((base, step)) => (base, Some(step)),
    };
    let step = match step {
        None => 1,
        Some(step) => {
            if !step.bytes().all(|b| b.is_ascii_digit()) || step.is_empty() {
                return Err(format!("step {step:?} is not a number").into());
            }
            match step.parse::<u32>() {
                Ok(0) => return Err("step cannot be zero".into()),
                Ok(n) => n,
                // More digits than u32 holds: larger than any field.
                Err(_) => u32::MAX,
            }
        }
    };
    let (lo, hi) = if base == "*" {
        field.bounds()
    } else if let Some((start, end)) = base.split_once('-') {
        let lo = value(field, start)?;
        let hi = value(field, end)?;
        // Sunday is 0 and 7: at the end of a range it is 7 (`fri-sun` is
        // 5-7), unless the range starts on Sunday (`sun-sun` is Sunday).
        let hi = if field == Field::DayOfWeek && hi == 0 && lo > 0 {
            7
        } else {
            hi
        };
        if lo > hi {
            return Err(
                format!("range {base:?} runs backwards; a range goes from low to high").into(),
            );
        }
        (lo, hi)
    } else {
        if base.is_empty() {
            return Err(format!("a step needs a range before it: write */{step}").into());
        }
        let n = value(field, base)?;
        if step != 1 {
            let (_, max) = field.bounds();
            return Err(format!("a step needs a range: write */{step} or {n}-{max}/{step}").into());
        }
        (n, n)
    };
    Ok(Item::Range { lo, hi, step })
}

/// The day of the week before `#` or `L`: 0-7 or a name.
fn weekday(day: &str, example: &str) -> Result<u32, Reason> {
    if day.is_empty() {
        return Err(
            format!("a day of the week goes first, 0-7 or sun-sat, as in {example}").into(),
        );
    }
    value(Field::DayOfWeek, day)
}

/// A number or a name, in `field`.
fn value(field: Field, token: &str) -> Result<u32, Reason> {
    let (lo, hi) = field.bounds();
    if token.is_empty() {
        return Err(format!("a range needs both ends, {}", field.expected()).into());
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!("{token} is out of range {lo}-{hi}").into()),
        };
    }
    let lower = token.to_ascii_lowercase();
    if let Some(i) = MONTHS.iter().position(|m| *m == lower) {
        return if field == Field::Month {
            Ok(i as u32 + 1)
        } else {
            Err(format!("{token:?} is a month name, allowed only in the month field").into())
        };
    }
    if let Some(i) = DAYS.iter().position(|d| *d == lower) {
        return if field == Field::DayOfWeek {
            Ok(i as u32)
        } else {
            Err(format!("{token:?} is a day name, allowed only in the day-of-week field").into())
        };
    }
    // What read_item takes as a whole item, met inside a range or step.
    let upper = token.to_ascii_uppercase();
    match field {
        Field::DayOfMonth if upper == "L" || upper.ends_with('W') => {
            return Err("L and W stand alone in a list item: no range, no step".into());
        }
        Field::DayOfWeek if upper.contains('#') || upper.ends_with('L') => {
            return Err("# and L stand alone in a list item: no range, no step".into());
        }
        _ => {}
    }
    let alphabetic = token.bytes().all(|b| b.is_ascii_alphabetic());
    Err(match field {
        Field::Month if alphabetic => format!("unknown name {token:?}; expected jan-dec"),
        Field::DayOfWeek if alphabetic => format!("unknown name {token:?}; expected sun-sat"),
        _ => format!("expected {}, got {token:?}", field.expected()),
    }
    .into())
}

/// Writes a field in croner's syntax, numbers only.
fn render_field(out: &mut String, items: Option<&[Item]>) {
    let Some(items) = items else {
        out.push('*');
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = match *item {
            // A step past the end leaves the start alone.
            Item::Range { lo, hi, step } if lo == hi || hi - lo < step => write!(out, "{lo}"),
            Item::Range { lo, hi, step: 1 } => write!(out, "{lo}-{hi}"),
            Item::Range { lo, hi, step } => write!(out, "{lo}-{hi}/{step}"),
            Item::Last => write!(out, "L"),
            Item::LastWeekday => write!(out, "LW"),
            Item::NearestWeekday(n) => write!(out, "{n}W"),
            Item::Nth(day, k) => write!(out, "{day}#{k}"),
            Item::LastOf(day) => write!(out, "{day}L"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn croner(expr: &str) -> Vec<String> {
        parse(expr).unwrap().patterns
    }

    fn err(expr: &str) -> String {
        parse(expr).unwrap_err().into()
    }

    #[test]
    fn hands_croner_numbers_only() {
        assert_eq!(croner("*/15 * * * *"), ["0-59/15 * * * *"]);
        assert_eq!(croner("0 9 * * mon-fri"), ["0 9 * * 1-5"]);
        assert_eq!(croner("0 0 1 jan,Jul *"), ["0 0 1 1,7 *"]);
        assert_eq!(croner("0 0 * * fri-sun"), ["0 0 * * 5-7"]);
        assert_eq!(croner("0 0 * * sun-sun"), ["0 0 * * 0"]);
        assert_eq!(croner("0 0 * * 0-sun,sun"), ["0 0 * * 0,0"]);
        assert_eq!(croner("0 0 * * fri#2,satL,0#l"), ["0 0 * * 5#2,6L,0L"]);
        assert_eq!(croner("0 0 l,15w,lw * *"), ["0 0 L,15W * *", "0 0 LW * *"]);
        assert_eq!(croner("0 0 ? * ?"), ["0 0 * * *"]);
        assert_eq!(croner("*/90 5/1 * * *").len(), 1);
        assert_eq!(croner("*/90 * * * *"), ["0 * * * *"]);
        assert_eq!(croner("*,30 * * * * *"), ["0-59,30 * * * * *"]);
        assert_eq!(croner("@weekly"), ["0 0 * * 0"]);
    }

    #[test]
    fn classifies_fields() {
        let p = parse("0 */2 * * *").unwrap();
        assert!(p.periodic && p.both_days);
        let p = parse("30 2 13 * fri").unwrap();
        assert!(!p.periodic && !p.both_days);
        assert!(parse("0 0 */2 * 1").unwrap().both_days);
        assert!(parse("0 0 1 * */2").unwrap().both_days);
        assert!(parse("0 0 ? * 1").unwrap().both_days);
        assert!(parse("* 0 * * *").unwrap().periodic);
        assert!(parse("0 * 0 * * *").unwrap().periodic); // six fields: minute `*`
        assert!(!parse("* 0 0 * * *").unwrap().periodic); // seconds do not count
    }

    #[test]
    fn every_message_names_its_field() {
        for (expr, message) in [
            ("61 * * * *", "minute field \"61\": 61 is out of range 0-59"),
            ("0 24 * * *", "hour field \"24\": 24 is out of range 0-23"),
            (
                "0 0 0 * *",
                "day-of-month field \"0\": 0 is out of range 1-31",
            ),
            ("0 0 * 13 *", "month field \"13\": 13 is out of range 1-12"),
            (
                "0 0 * * 8",
                "day-of-week field \"8\": 8 is out of range 0-7",
            ),
            (
                "60 * * * * *",
                "second field \"60\": 60 is out of range 0-59",
            ),
            (
                "99999999999 * * * *",
                "minute field \"99999999999\": 99999999999 is out of range 0-59",
            ),
            ("0 x * * *", "hour field \"x\": expected 0-23, got \"x\""),
            (
                "0 -1 * * *",
                "hour field \"-1\": a range needs both ends, 0-23",
            ),
            (
                "0 1- * * *",
                "hour field \"1-\": a range needs both ends, 0-23",
            ),
            (
                "0 1-2-3 * * *",
                "hour field \"1-2-3\": expected 0-23, got \"2-3\"",
            ),
            (
                "0 5-1 * * *",
                "hour field \"5-1\": range \"5-1\" runs backwards; a range goes from low to high",
            ),
            (
                "0 0 * * sat-mon",
                "day-of-week field \"sat-mon\": range \"sat-mon\" runs backwards; a range goes from low to high",
            ),
            (
                "5/10 * * * *",
                "minute field \"5/10\": a step needs a range: write */10 or 5-59/10",
            ),
            (
                "/10 * * * *",
                "minute field \"/10\": a step needs a range before it: write */10",
            ),
            ("*/0 * * * *", "minute field \"*/0\": step cannot be zero"),
            (
                "*/x * * * *",
                "minute field \"*/x\": step \"x\" is not a number",
            ),
            (
                "*/+2 * * * *",
                "minute field \"*/+2\": step \"+2\" is not a number",
            ),
            (
                "*/ * * * *",
                "minute field \"*/\": step \"\" is not a number",
            ),
            (
                "*/2/3 * * * *",
                "minute field \"*/2/3\": step \"2/3\" is not a number",
            ),
            ("1,,2 * * * *", "minute field \"1,,2\": empty list item"),
            (", * * * *", "minute field \",\": empty list item"),
            ("? * * * *", "minute field \"?\": expected 0-59, got \"?\""),
            (
                "0 0 W * *",
                "day-of-month field \"W\": W needs a day: 15W is the weekday nearest the 15th",
            ),
            (
                "0 0 32W * *",
                "day-of-month field \"32W\": 32 is out of range 1-31",
            ),
            (
                "0 0 L-2 * *",
                "day-of-month field \"L-2\": L and W stand alone in a list item: no range, no step",
            ),
            (
                "0 0 1-15W * *",
                "day-of-month field \"1-15W\": L and W stand alone in a list item: no range, no step",
            ),
            (
                "0 0 L * L",
                "day-of-week field \"L\": L alone is not a day of the week: write 5L for the last Friday of the month (the last day of the month is L in the day-of-month field)",
            ),
            (
                "0 0 * * 5#6",
                "day-of-week field \"5#6\": after # comes 1-5 (the k-th such day of the month) or L (the last), got \"6\"",
            ),
            (
                "0 0 * * 5#x",
                "day-of-week field \"5#x\": after # comes 1-5 (the k-th such day of the month) or L (the last), got \"x\"",
            ),
            (
                "0 0 * * #2",
                "day-of-week field \"#2\": a day of the week goes first, 0-7 or sun-sat, as in 5#2",
            ),
            (
                "0 0 * * 8L",
                "day-of-week field \"8L\": 8 is out of range 0-7",
            ),
            (
                "0 0 * * 1-5#2",
                "day-of-week field \"1-5#2\": expected 0-7 or sun-sat, got \"1-5\"",
            ),
            (
                "0 0 * * 1-5L",
                "day-of-week field \"1-5L\": # and L stand alone in a list item: no range, no step",
            ),
            (
                "0 0 * * jul",
                "day-of-week field \"jul\": \"jul\" is a month name, allowed only in the month field",
            ),
            (
                "0 0 * sunday *",
                "month field \"sunday\": unknown name \"sunday\"; expected jan-dec",
            ),
            (
                "0 0 * * mon+",
                "day-of-week field \"mon+\": \"+\" is not crontab syntax; the two day fields combine by cronie's rule (both must match when either starts with *)",
            ),
            (
                "0 0 * * 2027",
                "day-of-week field \"2027\": 2027 is out of range 0-7",
            ),
        ] {
            assert_eq!(err(expr), message, "{expr}");
        }
    }

    #[test]
    fn field_counts_and_macros() {
        assert_eq!(err("   "), "must not be empty");
        assert_eq!(
            err("* * * *"),
            "expected 5 or 6 fields (6 with leading seconds), got 4"
        );
        assert!(err("@reboot").starts_with("unknown macro \"@reboot\"; expected one of @yearly"));
        assert_eq!(croner("@DAILY"), ["0 0 * * *"]);
    }

    /// Random strings from cron's own characters: every one is read or
    /// refused with a message that names a field, and nothing panics.
    #[test]
    fn never_panics_and_always_names_the_field() {
        let alphabet: Vec<char> = "0123456789*/-,#LWlw?+ jJanMonSUNxX7".chars().collect();
        let mut seed: u64 = 0x5eed_cafe;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = 9 + (next() % 16) as usize;
            let expr: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            match parse(&expr) {
                Ok(parsed) => assert!(!parsed.patterns.is_empty(), "{expr}"),
                Err(e) => assert!(
                    e.starts_with("expected 5 or 6 fields")
                        || FIELDS
                            .iter()
                            .any(|f| e.starts_with(&format!("{} field \"", f.name()))),
                    "{expr:?}: {e}"
                ),
            }
        }
    }
}
