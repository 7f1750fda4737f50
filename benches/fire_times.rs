//! Next-fire-time computations per second for typical triggers, and what
//! parsing a stored trigger costs (every claim parses each due job's):
//! the scheduler's hot path.
//!
//! `cargo bench --bench fire_times` measures; under `cargo test` the same
//! code runs a few iterations so that it cannot rot.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use cronhook::domain::trigger::{Trigger, TriggerInput};
use serde_json::json;

fn trigger(value: serde_json::Value) -> Trigger {
    serde_json::from_value::<TriggerInput>(value)
        .unwrap()
        .parse(DateTime::UNIX_EPOCH, "trigger")
        .unwrap()
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (steps, rounds) = if measuring { (200_000, 7) } else { (50, 1) };
    let parses = steps / 20;
    let cases = [
        (
            "cron */15 * * * * (UTC)",
            json!({"type": "cron", "expr": "*/15 * * * *"}),
        ),
        (
            "cron 30 2 * * * (America/New_York)",
            json!({"type": "cron", "expr": "30 2 * * *", "timezone": "America/New_York"}),
        ),
        (
            "cron 0 9 * * mon-fri (Europe/Berlin)",
            json!({"type": "cron", "expr": "0 9 * * mon-fri", "timezone": "Europe/Berlin"}),
        ),
        (
            "cron * * * * * * (UTC)",
            json!({"type": "cron", "expr": "* * * * * *"}),
        ),
        (
            "cron 0 * * * * (Australia/Lord_Howe)",
            json!({"type": "cron", "expr": "0 * * * *", "timezone": "Australia/Lord_Howe"}),
        ),
        (
            "cron 0 0 L * * (UTC)",
            json!({"type": "cron", "expr": "0 0 L * *"}),
        ),
        (
            "interval every 60 s",
            json!({"type": "interval", "every_s": 60, "start_at": "2026-01-01T00:00:00Z"}),
        ),
    ];
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    println!(
        "{:<40} {:>14} {:>12} {:>12}",
        "trigger", "next/s", "ns/next", "ns/parse"
    );
    for (name, value) in cases {
        let mut parse_rounds = Vec::new();
        for _ in 0..rounds {
            let began = Instant::now();
            for _ in 0..parses {
                black_box(trigger(black_box(value.clone())));
            }
            parse_rounds.push(began.elapsed().as_secs_f64() / parses as f64);
        }
        parse_rounds.sort_by(f64::total_cmp);
        let parse = parse_rounds[parse_rounds.len() / 2];
        let trigger = trigger(value);
        let mut per_round = Vec::new();
        for _ in 0..rounds {
            let mut t = start;
            let began = Instant::now();
            for _ in 0..steps {
                t = black_box(trigger.next_after(black_box(t))).unwrap_or(start);
            }
            per_round.push(began.elapsed().as_secs_f64() / steps as f64);
        }
        per_round.sort_by(f64::total_cmp);
        let median = per_round[per_round.len() / 2];
        println!(
            "{name:<40} {:>14.0} {:>12.0} {:>12.0}",
            1.0 / median,
            median * 1e9,
            parse * 1e9
        );
    }
    if !measuring {
        println!("(smoke run; `cargo bench --bench fire_times` measures)");
    }
}
