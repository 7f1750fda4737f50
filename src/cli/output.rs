//! How the CLI prints: a table for people, JSON or YAML for scripts.

use clap::ValueEnum;
use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use serde_json::Value;

use super::BundleFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_header(header.iter().map(Cell::new));
    table
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A job's trigger in a word: `cron 0 3 * * * Europe/Berlin`.
fn trigger(job: &Value) -> String {
    let t = &job["trigger"];
    match t["type"].as_str() {
        Some("cron") => format!("cron {} {}", text(&t["expr"]), text(&t["timezone"])),
        Some("interval") => format!("every {}s", text(&t["every_s"])),
        Some("date") => format!("at {}", text(&t["run_at"])),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

fn labels(job: &Value) -> String {
    job["labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

impl Output {
    /// Any answer, as JSON or YAML (a table prints it as JSON).
    pub fn value(self, value: &Value) -> anyhow::Result<()> {
        match self {
            Output::Yaml => print!("{}", serde_norway::to_string(value)?),
            Output::Json | Output::Table => println!("{value:#}"),
        }
        Ok(())
    }

    /// A list of jobs (`jobs list`: an array for scripts, whatever its
    /// length), or one (`get`, `create`: an object).
    pub fn jobs(self, jobs: &[Value], one: bool) -> anyhow::Result<()> {
        if self != Output::Table {
            return match (jobs, one) {
                ([job], true) => self.value(job),
                (many, _) => self.value(&Value::Array(many.to_vec())),
            };
        }
        let mut table = table(&["ID", "STATE", "NEXT RUN", "TRIGGER", "LABELS"]);
        for job in jobs {
            table.add_row(vec![
                text(&job["id"]),
                text(&job["state"]),
                text(&job["next_run_at"]),
                trigger(job),
                labels(job),
            ]);
        }
        println!("{}", table.trim_fmt());
        Ok(())
    }

    /// An apply's plan: what it does to which job, calendar,
    /// subscription or flow key (the others named `calendar/<id>`).
    pub fn plan(self, plan: &Value) -> anyhow::Result<()> {
        if self != Output::Table {
            return self.value(plan);
        }
        let mut table = table(&["ACTION", "NAME", "CHANGES"]);
        // In the order an apply writes them.
        let sections = [
            ("calendar/", &plan["calendars"]),
            ("flow/", &plan["flows"]),
            ("", plan),
            ("subscription/", &plan["subscriptions"]),
        ];
        let (mut made, mut changed, mut unchanged) = (0, 0, 0);
        for (prefix, section) in sections {
            let ids = |key: &str| -> Vec<String> {
                section[key]
                    .as_array()
                    .map(|a| a.iter().map(|id| format!("{prefix}{}", text(id))).collect())
                    .unwrap_or_default()
            };
            for id in ids("create") {
                table.add_row(vec!["create".to_string(), id, String::new()]);
            }
            for update in section["update"].as_array().into_iter().flatten() {
                let changes: Vec<String> = update["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| format!("{} {}", text(&c["op"]), text(&c["path"])))
                    .collect();
                table.add_row(vec![
                    "update".to_string(),
                    format!("{prefix}{}", text(&update["id"])),
                    changes.join(", "),
                ]);
            }
            made += ids("create").len();
            changed += section["update"].as_array().map_or(0, Vec::len);
            unchanged += ids("unchanged").len();
        }
        let deleted: Vec<String> = plan["delete"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        for id in &deleted {
            table.add_row(vec!["delete".to_string(), id.clone(), String::new()]);
        }
        println!("{}", table.trim_fmt());
        let dry = if plan["dry_run"] == true {
            " (dry run: nothing written)"
        } else {
            ""
        };
        eprintln!(
            "{made} to create, {changed} to update, {} to delete, {unchanged} unchanged{dry}",
            deleted.len(),
        );
        Ok(())
    }
}

/// A bundle's text in `format`.
pub fn bundle_text(bundle: &Value, format: BundleFormat) -> anyhow::Result<String> {
    Ok(match format {
        BundleFormat::Json => format!("{bundle:#}\n"),
        BundleFormat::Yaml => serde_norway::to_string(bundle)?,
    })
}
