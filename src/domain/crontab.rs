//! A crontab as a bundle (DESIGN §11.9, `cronhook import crontab`): each
//! entry becomes a monitor-only job on the same schedule (cronie's
//! syntax: five fields or `@daily` and its kin, which the cron trigger
//! takes as they are; `CRON_TZ=` for the lines after it), so the crontab keeps running the command and pings the job,
//! and Cronhook alerts when a run is missed or fails (§11.5). The comment
//! just above an entry names it. What has no job (`@reboot`, `MAILTO=`
//! and the other environment lines, a line that does not parse) is
//! reported by line, never dropped in silence.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::bundle::{API_VERSION, KIND, OWNER_LABEL};
use super::trigger::{TriggerInput, TriggerKind};

/// Seconds after each fire time a ping may come before the run is missed.
pub const DEFAULT_GRACE_S: u32 = 300;

/// A line the import did not turn into a job, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// 1-based.
    pub line: usize,
    pub text: String,
    pub why: String,
}

/// What an import made: a bundle, and the lines left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub bundle: Value,
    pub unmapped: Vec<Unmapped>,
}

/// How the jobs are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The zone of entries before any `CRON_TZ=` (cron's is the host's).
    pub timezone: String,
    /// Labelled `cronhook.io/owner=<owner>`, for `apply --prune-owner`.
    pub owner: Option<String>,
}

/// Translates `crontab` (checked at `now`: an expression that never
/// fires is reported, not made a job).
pub fn import(crontab: &str, options: &ImportOptions, now: DateTime<Utc>) -> Imported {
    let mut zone = options.timezone.clone();
    let mut comment: Option<String> = None;
    let (mut jobs, mut unmapped) = (Vec::new(), Vec::new());
    let mut ids = std::collections::HashSet::new();
    for (i, raw) in crontab.lines().enumerate() {
        let line = raw.trim();
        let number = i + 1;
        let skip = |why: &str| Unmapped {
            line: number,
            text: line.to_string(),
            why: why.to_string(),
        };
        if line.is_empty() {
            comment = None;
            continue;
        }
        if let Some(text) = line.strip_prefix('#') {
            let text = text.trim();
            comment = (!text.is_empty()).then(|| text.to_string());
            continue;
        }
        if let Some((name, value)) = environment(line) {
            if name == "CRON_TZ" {
                zone = value;
            } else {
                unmapped.push(skip(&format!(
                    "{name}= is the crontab's environment; a monitor-only job has none"
                )));
            }
            comment = None;
            continue;
        }
        let (expr, command) = match schedule(line) {
            Ok(parts) => parts,
            Err(why) => {
                unmapped.push(skip(&why));
                comment = None;
                continue;
            }
        };
        let trigger = TriggerInput {
            kind: Some(TriggerKind::Cron),
            expr: Some(expr.clone()),
            timezone: Some(zone.clone()),
            ..Default::default()
        };
        if let Err(e) = trigger.clone().parse(now, "trigger") {
            unmapped.push(skip(&e.to_string()));
            comment = None;
            continue;
        }
        let name = comment.take();
        let id = unique_id(name.as_deref(), number, &mut ids);
        let mut job = Map::new();
        job.insert("id".into(), json!(id));
        if let Some(name) = name {
            job.insert("name".into(), json!(truncate(&name, 200)));
        }
        job.insert(
            "trigger".into(),
            json!({"type": "cron", "expr": expr, "timezone": zone}),
        );
        job.insert("target".into(), Value::Null);
        job.insert("monitor".into(), json!({"grace_s": DEFAULT_GRACE_S}));
        job.insert(
            "metadata".into(),
            json!({"command": command, "crontab_line": number}),
        );
        if let Some(owner) = &options.owner {
            job.insert("labels".into(), json!({OWNER_LABEL: owner}));
        }
        jobs.push(Value::Object(job));
    }
    Imported {
        bundle: json!({"apiVersion": API_VERSION, "kind": KIND, "jobs": jobs}),
        unmapped,
    }
}

/// `NAME=value` (cronie allows spaces around `=`, and quotes).
fn environment(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((name.to_string(), value.to_string()))
}

/// An entry's five-field expression and its command.
fn schedule(line: &str) -> Result<(String, String), String> {
    if let Some(rest) = line.strip_prefix('@') {
        // `@daily` and its kin are the trigger's own macros.
        let (nickname, command) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let nickname = format!("@{}", nickname.to_ascii_lowercase());
        if nickname == "@reboot" {
            return Err("@reboot runs at the host's start, which has no schedule".into());
        }
        if command.trim().is_empty() {
            return Err("expected a schedule and a command".into());
        }
        return Ok((nickname, command.trim().to_string()));
    }
    let mut fields = line.split_whitespace();
    let expr: Vec<&str> = fields.by_ref().take(5).collect();
    let command: Vec<&str> = fields.collect();
    if expr.len() < 5 || command.is_empty() {
        return Err("expected five schedule fields and a command".into());
    }
    Ok((expr.join(" "), command.join(" ")))
}

/// A job id from an entry's name, or its line: unique in the bundle.
fn unique_id(
    name: Option<&str>,
    line: usize,
    taken: &mut std::collections::HashSet<String>,
) -> String {
    let slug: String = name
        .unwrap_or("")
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug = slug
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let base = match slug.is_empty() {
        true => format!("crontab-line-{line}"),
        false => truncate(&slug, 60),
    };
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

fn truncate(text: &str, most: usize) -> String {
    text.chars().take(most).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bundle::Bundle;

    /// A real-world crontab, shipped with the tests.
    const CRONTAB: &str = include_str!("../../tests/fixtures/crontab");

    fn now() -> DateTime<Utc> {
        crate::domain::instant::parse("2026-12-04T10:00:00Z").unwrap()
    }

    fn options() -> ImportOptions {
        ImportOptions {
            timezone: "UTC".into(),
            owner: Some("ops".into()),
        }
    }

    fn job<'a>(imported: &'a Imported, id: &str) -> &'a Value {
        imported.bundle["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("no job {id} in {}", imported.bundle))
    }

    #[test]
    fn a_real_crontab_becomes_a_bundle_of_monitors() {
        assert!(CRONTAB.lines().count() >= 30);
        let imported = import(CRONTAB, &options(), now());
        Bundle::parse(&imported.bundle).expect("a bundle apply takes");
        let jobs = imported.bundle["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 14, "{:#}", imported.bundle);
        // A comment names the entry; the zone is the host's until CRON_TZ.
        let backup = job(&imported, "nightly-database-backup");
        assert_eq!(backup["name"], "Nightly database backup");
        assert_eq!(
            backup["trigger"],
            json!({"type": "cron", "expr": "30 2 * * *", "timezone": "UTC"})
        );
        assert_eq!(backup["target"], Value::Null);
        assert_eq!(backup["monitor"], json!({"grace_s": 300}));
        assert_eq!(backup["labels"], json!({"cronhook.io/owner": "ops"}));
        assert!(
            backup["metadata"]["command"]
                .as_str()
                .unwrap()
                .starts_with("/usr/local/bin/pg_backup.sh"),
            "{backup}"
        );
        let report = job(&imported, "weekly-sales-report-for-the-berlin-office");
        assert_eq!(
            report["trigger"],
            json!({"type": "cron", "expr": "0 7 * * mon-fri", "timezone": "Europe/Berlin"})
        );
        // Nicknames and ranges, steps and lists.
        assert_eq!(job(&imported, "rotate-logs")["trigger"]["expr"], "@daily");
        assert_eq!(
            job(&imported, "refresh-the-search-index")["trigger"]["expr"],
            "@hourly"
        );
        assert_eq!(
            job(&imported, "poll-the-queue-during-business-hours")["trigger"]["expr"],
            "*/5 9-17 * * 1-5"
        );
        // No comment: named by its line; the same name twice: numbered.
        assert!(
            jobs.iter()
                .any(|j| j["id"].as_str().unwrap().starts_with("crontab-line-"))
        );
        assert_eq!(job(&imported, "cleanup-2")["trigger"]["expr"], "15 4 * * 0");
    }

    #[test]
    fn what_has_no_job_is_reported_by_line() {
        let imported = import(CRONTAB, &options(), now());
        let why: Vec<(usize, &str)> = imported
            .unmapped
            .iter()
            .map(|u| (u.line, u.why.split_whitespace().next().unwrap_or("")))
            .collect();
        let lines = |prefix: &str| -> Vec<&str> {
            imported
                .unmapped
                .iter()
                .filter(|u| u.text.starts_with(prefix))
                .map(|u| u.why.as_str())
                .collect()
        };
        assert_eq!(lines("MAILTO").len(), 1, "{why:?}");
        assert_eq!(lines("SHELL").len(), 1, "{why:?}");
        assert!(lines("@reboot")[0].contains("no schedule"), "{why:?}");
        assert!(
            lines("61 ")[0].starts_with("trigger.expr:"),
            "{:?}",
            imported.unmapped
        );
        assert_eq!(imported.unmapped.len(), 5, "{:?}", imported.unmapped);
    }

    #[test]
    fn entries_and_environment_lines_are_told_apart() {
        assert_eq!(
            environment("CRON_TZ = 'Europe/Berlin'"),
            Some(("CRON_TZ".into(), "Europe/Berlin".into()))
        );
        assert_eq!(environment("*/5 * * * * FOO=bar /bin/x"), None);
        assert_eq!(
            schedule("@Daily /bin/true"),
            Ok(("@daily".into(), "/bin/true".into()))
        );
        assert!(schedule("* * * *").is_err());
        assert!(schedule("@daily").is_err());
        let odd = import("@sometimes /bin/x\n", &options(), now());
        assert!(odd.unmapped[0].why.starts_with("trigger.expr:"), "{odd:?}");
    }
}
