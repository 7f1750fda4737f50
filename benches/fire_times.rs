//! Next-fire-time computations per second for typical triggers, and what
//! parsing a trigger costs: from its JSON (the API), and a stored cron
//! expression through the cache of parsed ones (every claim parses each
//! due job's): the scheduler's hot path.
//!
//! `cargo bench --bench fire_times` measures; under `cargo test` the same
//! code runs a few iterations so that it cannot rot.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use cronhook::domain::trigger::{CronSchedule, Trigger, TriggerInput};
use serde_json::json;

fn trigger(value: serde_json::Value) -> Trigger {
    serde_json::from_value::<TriggerInput>(value)
        .unwrap()
        .parse(DateTime::UNIX_EPOCH, "trigger")
        .unwrap()
}

/// Seconds per call, the median over `rounds` timed runs of
/// `round(calls)`.
fn median_per_call(rounds: usize, calls: usize, mut round: impl FnMut(usize)) -> f64 {
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let began = Instant::now();
            round(calls);
            began.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[per_call.len() / 2]
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
        "{:<40} {:>14} {:>12} {:>12} {:>12}",
        "trigger", "next/s", "ns/next", "ns/parse", "ns/cached"
    );
    for (name, value) in cases {
        let parse = median_per_call(rounds, parses, |calls| {
            for _ in 0..calls {
                black_box(trigger(black_box(value.clone())));
            }
        });
        let cached = value["expr"].as_str().map(|expr| {
            let zone = value["timezone"].as_str().unwrap_or("UTC").parse().unwrap();
            median_per_call(rounds, parses, |calls| {
                for _ in 0..calls {
                    black_box(CronSchedule::parse_cached(black_box(expr), zone).unwrap());
                }
            })
        });
        let trigger = trigger(value);
        let next = median_per_call(rounds, steps, |calls| {
            let mut t = start;
            for _ in 0..calls {
                t = black_box(trigger.next_after(black_box(t))).unwrap_or(start);
            }
        });
        let cached = cached.map_or("-".into(), |c| format!("{:.0}", c * 1e9));
        println!(
            "{name:<40} {:>14.0} {:>12.0} {:>12.0} {cached:>12}",
            1.0 / next,
            next * 1e9,
            parse * 1e9
        );
    }
    if !measuring {
        println!("(smoke run; `cargo bench --bench fire_times` measures)");
    }
}
