//! APScheduler 3's jobs as a bundle (DESIGN §11.9, `cronhook import
//! apscheduler`): the JSON the README's snippet writes from
//! `scheduler.get_jobs()` (id, name, `str(trigger)`, the trigger's zone,
//! misfire_grace_time, coalesce, max_instances, next_run_time), each job
//! made a webhook to the URL its function now answers at. APScheduler's
//! meaning is kept: a cron field left out is `*` above the finest one
//! given and its minimum below, `day_of_week` counts from Monday, a job
//! with no next run time is paused, an interval keeps its grid. What
//! Cronhook's cron cannot say (`week`, `year`, `day` together with
//! `day_of_week`) is reported, never guessed.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::bundle::{API_VERSION, KIND, OWNER_LABEL};
use super::crontab::{Imported, Unmapped};

/// One job as the snippet writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ApsJob {
    pub id: String,
    pub name: Option<String>,
    /// `str(job.trigger)`: `cron[hour='*/4']`, `interval[0:30:00]`,
    /// `date[2030-01-01 10:00:00 UTC]`.
    pub trigger: String,
    /// `str(job.trigger.timezone)`, when the trigger has one.
    pub timezone: Option<String>,
    pub misfire_grace_time: Option<u32>,
    pub coalesce: Option<bool>,
    pub max_instances: Option<u32>,
    /// ISO 8601; none for a paused job.
    pub next_run_time: Option<String>,
}

/// How the jobs are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApsOptions {
    /// Each job's URL; `{id}` is its id.
    pub url_template: String,
    pub owner: Option<String>,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Translates the snippet's JSON text.
pub fn import(text: &str, options: &ApsOptions, now: DateTime<Utc>) -> Result<Imported, String> {
    let jobs: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| format!("expected the JSON array the README's snippet writes: {e}"))?;
    let (mut out, mut unmapped) = (Vec::new(), Vec::new());
    for (i, raw) in jobs.into_iter().enumerate() {
        let skip = |text: String, why: String| Unmapped {
            line: i + 1,
            text,
            why,
        };
        let job: ApsJob = match serde_json::from_value(raw.clone()) {
            Ok(job) => job,
            Err(e) => {
                unmapped.push(skip(raw.to_string(), e.to_string()));
                continue;
            }
        };
        match translate(&job, options, now) {
            Ok(entry) => out.push(entry),
            Err(why) => unmapped.push(skip(format!("{} {}", job.id, job.trigger), why)),
        }
    }
    Ok(Imported {
        bundle: json!({"apiVersion": API_VERSION, "kind": KIND, "jobs": out}),
        unmapped,
    })
}

fn translate(job: &ApsJob, options: &ApsOptions, now: DateTime<Utc>) -> Result<Value, String> {
    let zone = job
        .timezone
        .clone()
        .filter(|z| !z.is_empty() && z != "None")
        .unwrap_or_else(|| "UTC".to_string());
    let next = job
        .next_run_time
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("next_run_time {t:?}: {e}"))
        })
        .transpose()?;
    let trigger = if let Some(fields) = bracketed(&job.trigger, "cron") {
        json!({"type": "cron", "expr": cron_expr(fields)?, "timezone": zone})
    } else if let Some(every) = bracketed(&job.trigger, "interval") {
        let mut t = json!({"type": "interval", "every_s": timedelta_s(every)?});
        // The next run time is on the interval's grid: it keeps it.
        if let Some(next) = next {
            t["start_at"] = json!(super::instant::format(&next));
        }
        t
    } else if bracketed(&job.trigger, "date").is_some() {
        let run_at = next.ok_or("a date job with no next run time has run already")?;
        json!({"type": "date", "run_at": super::instant::format(&run_at)})
    } else {
        return Err("only cron, interval and date triggers are imported".into());
    };
    let input: super::trigger::TriggerInput =
        serde_json::from_value(trigger.clone()).map_err(|e| e.to_string())?;
    input.parse(now, "trigger").map_err(|e| e.to_string())?;
    let mut entry = Map::new();
    entry.insert("id".into(), json!(job.id));
    if let Some(name) = &job.name {
        entry.insert(
            "name".into(),
            json!(name.chars().take(200).collect::<String>()),
        );
    }
    entry.insert("trigger".into(), trigger);
    entry.insert(
        "target".into(),
        json!({"url": options.url_template.replace("{id}", &job.id)}),
    );
    entry.insert("misfire_grace_s".into(), json!(job.misfire_grace_time));
    if let Some(coalesce) = job.coalesce {
        entry.insert("coalesce".into(), json!(coalesce));
    }
    if let Some(most) = job.max_instances {
        entry.insert("max_instances".into(), json!(most));
    }
    // APScheduler keeps a paused job with no next run time.
    entry.insert("paused".into(), json!(job.next_run_time.is_none()));
    if let Some(owner) = &options.owner {
        entry.insert("labels".into(), json!({OWNER_LABEL: owner}));
    }
    Ok(Value::Object(entry))
}

/// `kind[inner]`'s inner text.
fn bracketed<'a>(text: &'a str, kind: &str) -> Option<&'a str> {
    text.strip_prefix(kind)?
        .strip_prefix('[')?
        .strip_suffix(']')
}

/// `cron[day_of_week='mon-fri', hour='9']` as Cronhook's expression.
fn cron_expr(fields: &str) -> Result<String, String> {
    let mut given: Map<String, Value> = Map::new();
    for pair in fields.split("', ").filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once("='")
            .ok_or_else(|| format!("cannot read the field {pair:?}"))?;
        given.insert(name.to_string(), json!(value.trim_end_matches('\'')));
    }
    let field = |name: &str| given.get(name).and_then(Value::as_str).map(str::to_string);
    for unsupported in ["year", "week"] {
        if field(unsupported).is_some_and(|v| v != "*") {
            return Err(format!(
                "{unsupported}: Cronhook's cron has no {unsupported} field"
            ));
        }
    }
    let (mut day, mut dow) = (field("day"), field("day_of_week").map(|d| names(&d)));
    // `3rd fri`, `last fri` in `day` are days of the week in cron.
    if let Some(d) = &day
        && let Some(weekday) = nth_weekday(d)
    {
        if dow.is_some() {
            return Err("day and day_of_week name weekdays both".into());
        }
        dow = Some(weekday);
        day = None;
    } else if let Some(d) = &day {
        day = Some(if d == "last" { "L".into() } else { d.clone() });
    }
    if day.as_deref().is_some_and(|d| d != "*") && dow.as_deref().is_some_and(|d| d != "*") {
        return Err(
            "day and day_of_week together mean both in APScheduler but either in cron".into(),
        );
    }
    // From the finest field to the coarsest, as APScheduler reads them:
    // below the finest given, a field is its minimum; above it, `*`.
    let fields = [
        (field("second"), "0"),
        (field("minute"), "0"),
        (field("hour"), "0"),
        (dow, "*"),
        (day, "1"),
        (field("month"), "1"),
    ];
    let finest = fields.iter().position(|(v, _)| v.is_some()).unwrap_or(0);
    let parts: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (value, minimum))| match value {
            Some(v) => v.clone(),
            None if i < finest => minimum.to_string(),
            None => "*".into(),
        })
        .collect();
    let (second, rest) = (
        &parts[0],
        [&parts[1], &parts[2], &parts[4], &parts[5], &parts[3]],
    );
    let five = rest.map(|p| p.as_str()).join(" ");
    Ok(match second.as_str() {
        "0" => five,
        s => format!("{s} {five}"),
    })
}

/// APScheduler's weekday numbers (Monday is 0) as names.
fn names(dow: &str) -> String {
    dow.split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let named: Vec<String> = range
                .split('-')
                .map(|n| match n.parse::<usize>() {
                    Ok(i) if i < 7 => DAY_NAMES[i].to_string(),
                    _ => n.to_string(),
                })
                .collect();
            let named = named.join("-");
            match step {
                Some(s) => format!("{named}/{s}"),
                None => named,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `3rd fri` as `fri#3`, `last fri` as `fri#L`.
fn nth_weekday(day: &str) -> Option<String> {
    let (nth, weekday) = day.split_once(' ')?;
    let weekday = weekday.trim();
    if !DAY_NAMES.contains(&weekday) {
        return None;
    }
    let k = match nth {
        "1st" => "1",
        "2nd" => "2",
        "3rd" => "3",
        "4th" => "4",
        "5th" => "5",
        "last" => "L",
        _ => return None,
    };
    Some(format!("{weekday}#{k}"))
}

/// `str(timedelta)`: `0:30:00`, `1 day, 2:00:00`, `3 days, 0:00:00.5`.
fn timedelta_s(text: &str) -> Result<u64, String> {
    let bad = || format!("cannot read the interval {text:?}");
    let (days, clock) = match text.split_once(", ") {
        Some((days, clock)) => {
            let n = days
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(bad)?;
            (n, clock)
        }
        None => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [h, m, s] = parts[..] else {
        return Err(bad());
    };
    let seconds: f64 = s.parse().map_err(|_| bad())?;
    if seconds.fract() != 0.0 {
        return Err(format!("{text}: Cronhook's intervals are whole seconds"));
    }
    let h: u64 = h.parse().map_err(|_| bad())?;
    let m: u64 = m.parse().map_err(|_| bad())?;
    let whole = u64::try_from(seconds as i64).map_err(|_| bad())?;
    days.checked_mul(86_400)
        .and_then(|d| d.checked_add(h.checked_mul(3_600)?))
        .and_then(|t| t.checked_add(m.checked_mul(60)?))
        .and_then(|t| t.checked_add(whole))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        crate::domain::instant::parse("2026-12-04T10:00:00Z").unwrap()
    }

    #[test]
    fn cron_fields_keep_apscheduler_s_meaning() {
        let expr = |fields: &str| cron_expr(fields).unwrap();
        assert_eq!(expr("hour='*/4'"), "0 */4 * * *");
        assert_eq!(
            expr("day_of_week='mon-fri', hour='9', minute='30'"),
            "30 9 * * mon-fri"
        );
        assert_eq!(expr("day_of_week='0-4'"), "0 0 * * mon-fri");
        assert_eq!(expr("day='last'"), "0 0 L * *");
        assert_eq!(expr("day='3rd fri'"), "0 0 * * fri#3");
        assert_eq!(expr("month='6-8', day='1'"), "0 0 1 6-8 *");
        assert_eq!(expr("second='*/10'"), "*/10 * * * * *");
        assert!(cron_expr("week='1'").unwrap_err().starts_with("week:"));
        assert!(
            cron_expr("day='1', day_of_week='mon'")
                .unwrap_err()
                .contains("either")
        );
    }

    #[test]
    fn intervals_read_as_seconds() {
        assert_eq!(timedelta_s("0:30:00"), Ok(1_800));
        assert_eq!(timedelta_s("1 day, 2:00:00"), Ok(93_600));
        assert_eq!(timedelta_s("3 days, 0:00:05"), Ok(259_205));
        assert!(timedelta_s("0:00:00.5").is_err());
        assert!(timedelta_s("soon").is_err());
        assert!(timedelta_s("18446744073709551615:0:0").is_err());
    }

    #[test]
    fn a_job_becomes_a_webhook_with_its_policies() {
        let options = ApsOptions {
            url_template: "https://worker.example.com/jobs/{id}".into(),
            owner: Some("billing".into()),
        };
        let text = r#"[
          {"id": "report", "name": "send_report", "trigger": "cron[hour='*/4']",
           "timezone": "Europe/Berlin", "misfire_grace_time": 900, "coalesce": true,
           "max_instances": 2, "next_run_time": "2026-12-04T12:00:00+01:00"},
          {"id": "sync", "name": "sync", "trigger": "interval[0:30:00]", "timezone": "UTC",
           "misfire_grace_time": 1, "coalesce": false, "max_instances": 1,
           "next_run_time": "2026-12-04T10:17:00+00:00"},
          {"id": "paused", "name": "p", "trigger": "cron[day='last']", "timezone": "UTC",
           "misfire_grace_time": null, "coalesce": true, "max_instances": 1, "next_run_time": null},
          {"id": "weekly", "name": "w", "trigger": "cron[week='1']", "timezone": "UTC",
           "misfire_grace_time": 1, "coalesce": true, "max_instances": 1,
           "next_run_time": "2027-01-04T00:00:00+00:00"}
        ]"#;
        let imported = import(text, &options, now()).unwrap();
        crate::domain::bundle::Bundle::parse(&imported.bundle).unwrap();
        let jobs = imported.bundle["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(
            jobs[0],
            json!({"id": "report", "name": "send_report",
                   "trigger": {"type": "cron", "expr": "0 */4 * * *", "timezone": "Europe/Berlin"},
                   "target": {"url": "https://worker.example.com/jobs/report"},
                   "misfire_grace_s": 900, "coalesce": true, "max_instances": 2, "paused": false,
                   "labels": {"cronhook.io/owner": "billing"}})
        );
        assert_eq!(
            jobs[1]["trigger"],
            json!({"type": "interval", "every_s": 1800, "start_at": "2026-12-04T10:17:00Z"})
        );
        assert_eq!(jobs[2]["paused"], true);
        assert_eq!(jobs[2]["misfire_grace_s"], Value::Null);
        assert_eq!(imported.unmapped.len(), 1);
        assert_eq!(imported.unmapped[0].line, 4);
        assert!(imported.unmapped[0].why.starts_with("week:"));
        assert!(import("{}", &options, now()).is_err());
    }
}
