//! `/ui/overview` (DESIGN.md §10): the tenant's last 24 hours at a glance,
//! runs per hour by outcome and how late they went out, drawn as SVG by
//! the server (no script, no chart library) with the figures in a table
//! beside it for screen readers and for copying.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use maud::{Markup, html};

use super::render;
use super::session::{UiError, Viewer};
use crate::domain::overview::{self, Hour, Lateness, Overview};
use crate::state::AppState;

/// The most runs read: past it, the overview covers the newest only.
const MOST_RUNS: u32 = 100_000;
/// The charts' drawing size, in SVG units; they scale to the page.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let now = Utc::now();
    let runs = app
        .store
        .overview_runs(&viewer.caller.tenant, overview::since(now), MOST_RUNS)
        .await?;
    let capped = runs.len() as u32 >= MOST_RUNS;
    let seen = overview::summarize(&runs, now);
    let body = html! {
        h1 { "Overview" }
        p { "The last 24 hours, by the hour the runs were made (UTC)."
            @if capped { " Only the newest " (MOST_RUNS) " runs are counted." } }
        (totals(&seen))
        section {
            h2 { "Runs per hour" }
            (outcome_chart(&seen))
            p.legend {
                span.key.succeeded { "succeeded" } " " span.key.failed { "failed" } " "
                span.key.not-sent { "missed, skipped or cancelled" } " " span.key.in-flight { "in flight" }
            }
        }
        section {
            h2 { "Lateness" }
            p { "From a fire time to its first request, for the trigger's own runs (not manual runs or backfills)." }
            (lateness_chart(&seen))
            p.legend { span.key.p50 { "p50" } " " span.key.p95 { "p95" } " " span.key.p99 { "p99" } }
        }
        section {
            h2 { "By hour" }
            div.table-wrap { table.overview {
                thead { tr {
                    th scope="col" { "Hour" } th scope="col" { "Succeeded" } th scope="col" { "Failed" }
                    th scope="col" { "Not sent" } th scope="col" { "In flight" }
                    th scope="col" { "p50" } th scope="col" { "p95" } th scope="col" { "p99" }
                } }
                tbody { @for hour in seen.hours.iter().rev().filter(|h| h.outcomes.total() > 0) {
                    tr data-hour=(hour.start.format("%H:00")) {
                        td { (hour.start.format("%Y-%m-%d %H:00")) }
                        td { (hour.outcomes.succeeded) } td { (hour.outcomes.failed) }
                        td { (hour.outcomes.not_sent) } td { (hour.outcomes.in_flight) }
                        @match hour.lateness {
                            Some(l) => { td { (ms(l.p50_ms)) } td { (ms(l.p95_ms)) } td { (ms(l.p99_ms)) } }
                            None => { td.none { "—" } td.none { "—" } td.none { "—" } }
                        }
                    }
                } }
            } }
        }
    };
    Ok(viewer.page("Overview", None, body))
}

/// The day's sums: runs by outcome and lateness over all of them.
fn totals(seen: &Overview) -> Markup {
    let o = seen.outcomes;
    html! {
        dl.totals {
            dt { "Runs" } dd #runs-total { (o.total()) }
            dt { "Succeeded" } dd #runs-succeeded { (o.succeeded) }
            dt { "Failed" } dd #runs-failed { (o.failed) }
            dt { "Not sent" } dd { (o.not_sent) }
            dt { "In flight" } dd { (o.in_flight) }
            @match seen.lateness {
                Some(l) => {
                    dt { "Lateness p50 / p95 / p99" }
                    dd #lateness { (ms(l.p50_ms)) " / " (ms(l.p95_ms)) " / " (ms(l.p99_ms)) }
                }
                None => { dt { "Lateness" } dd #lateness { "no run sent yet" } }
            }
        }
    }
}

/// A stacked bar per hour, each outcome its own colour (the stylesheet's,
/// so the dark theme has its own).
fn outcome_chart(seen: &Overview) -> Markup {
    let most = seen
        .hours
        .iter()
        .map(|h| h.outcomes.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / seen.hours.len() as f64;
    let scale = (HEIGHT - 20.0) / f64::from(most);
    // Each bar's parts, bottom up: (x, y, height, outcome, runs, hour).
    let mut bars = Vec::new();
    for (i, hour) in seen.hours.iter().enumerate() {
        let mut top = HEIGHT;
        for (class, n) in stack(hour).into_iter().filter(|(_, n)| *n > 0) {
            let height = f64::from(n) * scale;
            top -= height;
            bars.push((i as f64 * slot + 2.0, top, height, class, n, hour.start));
        }
    }
    html! {
        svg.chart #outcome-chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 18.0) } role="img"
            aria-label={ "Runs per hour, at most " (most) " in an hour" } {
            text.axis x="0" y="10" { (most) }
            line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
            @for (x, y, height, class, n, start) in bars {
                rect class=(class) x=(format!("{x:.1}")) y=(format!("{y:.1}"))
                    width=(format!("{:.1}", slot - 4.0)) height=(format!("{height:.1}")) {
                    title { (start.format("%H:00")) ": " (n) " " (class) }
                }
            }
            (hour_labels(seen, slot))
        }
    }
}

/// Every sixth hour under a chart.
fn hour_labels(seen: &Overview, slot: f64) -> Markup {
    html! {
        @for (i, hour) in seen.hours.iter().enumerate().step_by(6) {
            text.axis x=(format!("{:.1}", i as f64 * slot + 2.0)) y=(HEIGHT + 14.0) { (hour.start.format("%H:00")) }
        }
    }
}

fn stack(hour: &Hour) -> [(&'static str, u32); 4] {
    let o = hour.outcomes;
    [
        ("succeeded", o.succeeded),
        ("failed", o.failed),
        ("not-sent", o.not_sent),
        ("in-flight", o.in_flight),
    ]
}

/// A line per percentile across the hours that sent runs.
fn lateness_chart(seen: &Overview) -> Markup {
    let most = seen
        .hours
        .iter()
        .filter_map(|h| h.lateness.map(|l| l.p99_ms))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / seen.hours.len() as f64;
    let scale = (HEIGHT - 20.0) / most as f64;
    // Each percentile's points, one per hour that sent runs.
    let line = |pick: fn(&Lateness) -> i64| -> Vec<(f64, f64)> {
        seen.hours
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.lateness.as_ref().map(|l| (i, pick(l))))
            .map(|(i, v)| ((i as f64 + 0.5) * slot, HEIGHT - v as f64 * scale))
            .collect()
    };
    let percentiles = [
        ("p50", line(|l| l.p50_ms)),
        ("p95", line(|l| l.p95_ms)),
        ("p99", line(|l| l.p99_ms)),
    ];
    html! {
        svg.chart #lateness-chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 18.0) } role="img"
            aria-label={ "Lateness per hour, at most " (ms(most)) } {
            text.axis x="0" y="10" { (ms(most)) }
            line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
            @for (class, points) in percentiles {
                polyline class=(class)
                    points=(points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                // A lone hour draws no line: its point shows.
                @for (x, y) in points {
                    circle class=(class) cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" {}
                }
            }
            (hour_labels(seen, slot))
        }
    }
}

/// Lateness as the job page shows it: `+13 ms`, `+1.204 s`.
fn ms(ms: i64) -> String {
    render::delay(TimeDelta::milliseconds(ms))
}
