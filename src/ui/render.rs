//! The dashboard's shared markup: the page frame, badges, times, buttons.
//! Status words always sit inside their coloured badge: readable without
//! colour.

use crate::domain::trigger::Zone;
use chrono::{DateTime, FixedOffset, Offset, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Viewer;
use crate::domain::job::JobState;
use crate::domain::run::RunStatus;
use crate::domain::trigger::utc_offset_s;

/// Bumped with the binary, so that a browser never keeps an old asset.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Cronhook" }
            link rel="stylesheet" href={ "/ui/assets/app.css?v=" (ASSET_VERSION) };
            script src={ "/ui/assets/live.js?v=" (ASSET_VERSION) } defer {}
        }
    }
}

/// A page with the navigation. `live` is the event stream's query string:
/// the page re-reads itself when an event comes.
pub fn page(viewer: &Viewer, title: &str, live: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/ui" { "Cronhook" }
                        a href="/ui" { "Jobs" }
                        a href="/ui/overview" { "Overview" }
                        a href="/ui/failed" { "Failed runs" }
                        a href="/ui/alerts" { "Alerts" }
                        a href="/ui/flows" { "Flows" }
                        a href="/ui/agenda" { "Agenda" }
                        a href="/ui/events" { "Events" }
                        a href="/ui/subscriptions" { "Subscriptions" }
                        @if viewer.role() >= crate::domain::auth::Role::Write {
                            a href="/ui/audit" { "Audit" }
                        }
                        @if viewer.role() == crate::domain::auth::Role::Root {
                            a href="/ui/tokens" { "Tokens" }
                        }
                        a href="/docs" { "API docs" }
                    }
                    div.who {
                        span { "tenant " b { (viewer.caller.tenant.as_str()) } }
                        span { " · role " b #role { (viewer.role()) } }
                        @if viewer.signed_in {
                            form.inline method="post" action="/ui/logout" {
                                (csrf_field(viewer))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main data-live=[live] {
                    @if live.is_some() {
                        p.live-status aria-live="polite" { span #live-status { "connecting…" } }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { nav aria-label="Main" { a.brand href="/ui" { "Cronhook" } } }
                main #main { (body) }
            }
        }
    }
}

pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A button that posts to `action` with the viewer's CSRF token.
pub fn action(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

pub fn run_badge(status: RunStatus) -> Markup {
    html! { span class={ "badge run-" (status.as_str()) } { (status.as_str()) } }
}

pub fn state_badge(state: JobState) -> Markup {
    html! { span class={ "badge state-" (state.as_str()) } { (state.as_str()) } }
}

/// An instant as people read it: `2026-12-02 04:32:20 UTC`.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The same instant's wall time in `tz`: `2026-12-02 13:32:20 +09:00`.
pub fn local(t: DateTime<Utc>, tz: Zone) -> String {
    let offset = FixedOffset::east_opt(utc_offset_s(t, tz)).unwrap_or(Utc.fix());
    t.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// A time and, when the zone is not UTC, its wall time there.
pub fn instant(t: DateTime<Utc>, tz: Zone) -> Markup {
    html! {
        time datetime=(crate::domain::instant::format(&t)) { (utc(t)) }
        @if tz != Zone::UTC {
            br; span.local { (local(t, tz)) " " (tz.name()) }
        }
    }
}

/// A signed duration in seconds or milliseconds: `+1.204 s`, `+87 ms`.
pub fn delay(d: TimeDelta) -> String {
    let ms = d.num_milliseconds();
    let sign = if ms < 0 { "−" } else { "+" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        format!("{sign}{ms} ms")
    } else {
        format!("{sign}{:.3} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_delays_read_as_people_write_them() {
        let t = crate::domain::instant::parse("2026-03-08T07:00:00.123456Z").unwrap();
        assert_eq!(utc(t), "2026-03-08 07:00:00 UTC");
        let new_york: Zone = "America/New_York".parse().unwrap();
        assert_eq!(local(t, new_york), "2026-03-08 03:00:00 -04:00");
        assert_eq!(local(t, Zone::UTC), "2026-03-08 07:00:00 +00:00");
        assert_eq!(delay(TimeDelta::milliseconds(87)), "+87 ms");
        assert_eq!(delay(TimeDelta::milliseconds(1204)), "+1.204 s");
        assert_eq!(delay(TimeDelta::milliseconds(-3)), "−3 ms");
    }
}
