//! Calendars and richer triggers (DESIGN.md §11.4), end to end through
//! the API to a real receiver, on both stores: a holiday imported from an
//! iCalendar file keeps a job from firing, `previous_allowed` fires on the
//! day before, a calendar change re-plans the jobs that use it, the agenda
//! lists what was excluded and moved, and `H` and `any_of` resolve.

use crate::support as common;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use common::receiver::Receiver;
use common::{Backend, Reply, TestApp, eventually, instant};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn import(app: &TestApp, id: &str, ics: &str) -> Reply {
    let response = app
        .client
        .post(app.url(&format!("/v1/calendars/{id}/import")))
        .header("content-type", "text/calendar")
        .body(ics.to_string())
        .send()
        .await
        .expect("sent");
    Reply::from(response).await
}

fn ics_of_days(days: &[chrono::NaiveDate]) -> String {
    let events: String = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "BEGIN:VEVENT\r\nUID:{i}@test\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Closed\r\nDTSTART;VALUE=DATE:{}\r\nEND:VEVENT\r\n",
                d.format("%Y%m%d")
            )
        })
        .collect();
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\n{events}END:VCALENDAR\r\n"
    )
}

async fn runs(app: &TestApp, job: &str) -> Vec<Value> {
    app.get(&format!("/v1/jobs/{job}/runs?limit=100"))
        .await
        .json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn a_job_excluded_on_an_imported_holiday_never_fires_that_day(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    let created = app
        .post("/v1/calendars", json!({"id": "closed", "timezone": "UTC"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Yesterday to tomorrow, so that midnight during the test changes nothing.
    let today = Utc::now().date_naive();
    let days = [today.pred_opt().unwrap(), today, today.succ_opt().unwrap()];
    let imported = import(&app, "closed", &ics_of_days(&days)).await;
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.json()["added_days"], 3, "{}", imported.text);
    let every_second = |id: &str, calendars: Value| {
        json!({"id": id, "trigger": {"type": "cron", "expr": "* * * * * *", "calendars": calendars},
               "target": {"url": receiver.url(&format!("/{id}"))}})
    };
    app.create_job(every_second("closed-job", json!({"exclude": ["closed"]})))
        .await;
    app.create_job(every_second("open-job", json!({}))).await;
    // The open job fires several times; the closed one, in the same time,
    // never: its next fire time lies after the holidays.
    eventually(DEADLINE, "the open job fired three times", || async {
        (receiver.received("/open-job").len() >= 3).then_some(())
    })
    .await;
    assert!(receiver.received("/closed-job").is_empty());
    assert!(runs(&app, "closed-job").await.is_empty());
    let job = app.get("/v1/jobs/closed-job").await.json();
    let next = instant(&job["next_run_at"]);
    assert_eq!(next.date_naive(), today + TimeDelta::days(2), "{job}");
    // The agenda says why.
    let from = text(Utc::now());
    let agenda = app
        .get(&format!("/v1/agenda?job_id=closed-job&from={from}&limit=3"))
        .await;
    assert_eq!(agenda.status, 200, "{}", agenda.text);
    let first = &agenda.json()["items"][0];
    assert_eq!(first["excluded"], true, "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("excluded by calendar closed (date "),
        "{first}"
    );
    // The dashboard's agenda and the job's page say so too.
    let page = app.get("/ui/agenda?q=closed").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text
            .contains("excluded: excluded by calendar closed (date "),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("data-calendar=\"closed\""),
        "{}",
        page.text
    );
    let page = app.get("/ui/jobs/closed-job").await;
    assert!(
        page.text.contains("Excluded or moved in the next 31 days"),
        "{}",
        page.text
    );
    // In use: the calendar cannot go.
    let refused = app.delete("/v1/calendars/closed").await;
    assert!(
        refused.problem(409).contains("closed-job"),
        "{}",
        refused.text
    );
}

async fn previous_allowed_fires_on_the_day_before_and_says_what_it_stands_for(backend: Backend) {
    let receiver = Receiver::start().await;
    let app = TestApp::spawn(backend).await;
    // The job's one occurrence a year: tomorrow at a time a few seconds
    // from now. Tomorrow is a holiday; the day before is today.
    let fire = (Utc::now() + TimeDelta::seconds(6))
        .with_nanosecond(0)
        .unwrap();
    let nominal = fire + TimeDelta::days(1);
    let holiday = nominal.date_naive().format("%Y-%m-%d").to_string();
    let made = app
        .post(
            "/v1/calendars",
            json!({"id": "holiday", "rules": [{"date": holiday}]}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let expr = nominal.format("%S %M %H %d %m *").to_string();
    let job = app
        .create_job(json!({
            "id": "report",
            "trigger": {"type": "cron", "expr": expr,
                        "calendars": {"exclude": ["holiday"], "on_excluded": "previous_allowed"}},
            "target": {"url": receiver.url("/report")}
        }))
        .await;
    assert_eq!(instant(&job["next_run_at"]), fire, "{job}");
    assert_eq!(
        job["trigger"]["calendars"]["on_excluded"],
        "previous_allowed"
    );
    let run = eventually(DEADLINE, "the moved run succeeded", || async {
        let runs = runs(&app, "report").await;
        let run = runs.first()?.clone();
        (run["status"] == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(instant(&run["scheduled_for"]), fire, "{run}");
    assert_eq!(instant(&run["nominal_for"]), nominal, "{run}");
    assert_eq!(receiver.received("/report").len(), 1);
}

async fn a_calendar_change_replans_the_jobs_that_use_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put("/v1/calendars/maintenance", json!({"rules": []}))
        .await;
    let job = app
        .create_job(json!({
            "id": "nightly",
            "trigger": {"type": "cron", "expr": "0 12 * * *",
                        "calendars": {"exclude": ["maintenance"], "on_excluded": "next_allowed"}},
            "target": {"url": "http://127.0.0.1:9/"}
        }))
        .await;
    let next = instant(&job["next_run_at"]);
    let day = next.date_naive().format("%Y-%m-%d").to_string();
    let changed = app
        .put(
            "/v1/calendars/maintenance",
            json!({"rules": [{"date": day}]}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json()["replanned_jobs"], json!(["nightly"]));
    let job = app.get("/v1/jobs/nightly").await.json();
    assert_eq!(
        instant(&job["next_run_at"]),
        next + TimeDelta::days(1),
        "{job}"
    );
    // The agenda shows the move: the occurrence of `day` fires the next day
    // (with that day's own, merged into one run when it comes).
    let agenda = app
        .get(&format!(
            "/v1/agenda?job_id=nightly&from={}&limit=2",
            text(next - TimeDelta::seconds(1))
        ))
        .await
        .json();
    let moved = agenda["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("nominal_for").is_some())
        .cloned()
        .unwrap_or_else(|| panic!("{agenda}"));
    assert_eq!(instant(&moved["nominal_for"]), next);
    assert_eq!(instant(&moved["at"]), next + TimeDelta::days(1));
}

async fn the_shipped_holiday_file_is_honoured_by_fire_times(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put("/v1/calendars/de", json!({"timezone": "Europe/Berlin"}))
        .await;
    let ics = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/de-holidays.ics"
    ))
    .unwrap();
    let imported = import(&app, "de", &ics).await;
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.json()["timed_events_skipped"], 1);
    app.put(
        "/v1/calendars/weekends",
        json!({"timezone": "Europe/Berlin", "rules": [{"weekdays": ["sat", "sun"]}]}),
    )
    .await;
    app.put("/v1/calendars/business", json!({"timezone": "Europe/Berlin", "rules": [{"calendar": "de"}, {"calendar": "weekends"}]}))
        .await;
    let preview = |trigger: Value, after: &str, count: u32| {
        let app = &app;
        let after = after.to_string();
        async move {
            let reply = app
                .post(
                    "/v1/triggers/preview",
                    json!({"trigger": trigger, "after": after, "count": count}),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.json()
        }
    };
    let locals = |p: &Value| -> Vec<String> {
        p["fire_times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["local"].as_str().unwrap().to_string())
            .collect()
    };
    // The last business day of the month at 18:00 in Berlin: 31 January
    // and 28 February 2027 are Sundays, 31 March a Wednesday (in summer
    // time).
    let calendars = json!({"exclude": ["business"], "on_excluded": "previous_allowed"});
    let p = preview(
        json!({"type": "cron", "expr": "0 18 L * *", "timezone": "Europe/Berlin", "calendars": calendars}),
        "2027-01-01T00:00:00Z",
        3,
    )
    .await;
    assert_eq!(
        locals(&p),
        [
            "2027-01-29T18:00:00+01:00",
            "2027-02-26T18:00:00+01:00",
            "2027-03-31T18:00:00+02:00"
        ],
        "{p}"
    );
    assert_eq!(
        p["fire_times"][0]["nominal_for"], "2027-01-31T17:00:00Z",
        "{p}"
    );
    // Whit Monday, 17 May 2027, from the imported file: the Friday before.
    let p = preview(
        json!({"type": "cron", "expr": "0 18 17 5 *", "timezone": "Europe/Berlin", "calendars": calendars}),
        "2027-01-01T00:00:00Z",
        1,
    )
    .await;
    assert_eq!(locals(&p), ["2027-05-14T18:00:00+02:00"], "{p}");
    assert_eq!(
        p["fire_times"][0]["reason"], "excluded by calendar de (date 2027-05-17)",
        "{p}"
    );
    // Skipped, Christmas shows as excluded.
    let p = preview(
        json!({"type": "cron", "expr": "0 9 24-27 12 *", "timezone": "Europe/Berlin", "calendars": {"exclude": ["de"]}}),
        "2026-12-01T00:00:00Z",
        2,
    )
    .await;
    assert_eq!(
        locals(&p),
        ["2026-12-24T09:00:00+01:00", "2026-12-27T09:00:00+01:00"],
        "{p}"
    );
    let excluded: Vec<&str> = p["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        excluded,
        [
            "excluded by calendar de (date 2026-12-25)",
            "excluded by calendar de (date 2026-12-26)"
        ],
        "{p}"
    );
}

async fn bad_calendars_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let unknown = app
        .post(
            "/v1/jobs",
            json!({"trigger": {"type": "cron", "expr": "0 9 * * *", "calendars": {"exclude": ["nope"]}},
                   "target": {"url": "http://127.0.0.1:9/"}}),
        )
        .await;
    assert!(
        unknown
            .problem(422)
            .contains("trigger.calendars.exclude[0]"),
        "{}",
        unknown.text
    );
    let bad_rule = app
        .post(
            "/v1/calendars",
            json!({"id": "x", "rules": [{"weekdays": ["funday"]}]}),
        )
        .await;
    assert!(
        bad_rule.problem(422).contains("rules[0].weekdays[0]"),
        "{}",
        bad_rule.text
    );
    app.put("/v1/calendars/a", json!({})).await;
    app.put("/v1/calendars/b", json!({"rules": [{"calendar": "a"}]}))
        .await;
    let cycle = app
        .put("/v1/calendars/a", json!({"rules": [{"calendar": "b"}]}))
        .await;
    assert!(cycle.problem(422).contains("cycle"), "{}", cycle.text);
    let in_use = app.delete("/v1/calendars/a").await;
    assert!(
        in_use.problem(409).contains("calendars b"),
        "{}",
        in_use.text
    );
    let not_ics = import(&app, "a", "hello").await;
    assert!(
        not_ics.problem(422).contains("iCalendar"),
        "{}",
        not_ics.text
    );
    let wrong_type = app.post("/v1/calendars/a/import", json!({})).await;
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text);
    let too_long = app
        .get("/v1/agenda?from=2027-01-01T00:00:00Z&to=2027-03-01T00:00:00Z")
        .await;
    assert!(
        too_long.problem(422).contains("31 days"),
        "{}",
        too_long.text
    );
    assert_eq!(app.delete("/v1/calendars/b").await.status, 204);
    assert_eq!(app.delete("/v1/calendars/b").await.status, 404);
}

async fn hashed_minutes_and_any_of_resolve_for_the_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let job = app
        .create_job(json!({
            "id": "spread",
            "trigger": {"type": "cron", "expr": "H H(2-5) * * *", "timezone": "Europe/Berlin"},
            "target": {"url": "http://127.0.0.1:9/"}
        }))
        .await;
    assert_eq!(job["trigger"]["expr"], "H H(2-5) * * *");
    let resolved = job["trigger"]["resolved_expr"]
        .as_str()
        .unwrap()
        .to_string();
    let fields: Vec<u32> = resolved
        .split(' ')
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(fields[0] < 60 && (2..=5).contains(&fields[1]), "{resolved}");
    // Stable: a replacement with the same text keeps it, and the preview
    // for this job id says the same.
    let again = app.get("/v1/jobs/spread").await.json();
    assert_eq!(again["trigger"]["resolved_expr"], resolved.as_str());
    let preview = app
        .post(
            "/v1/triggers/preview",
            json!({"trigger": {"type": "cron", "expr": "H H(2-5) * * *", "timezone": "Europe/Berlin"}, "job_id": "spread"}),
        )
        .await
        .json();
    assert_eq!(preview["resolved_expr"], resolved.as_str(), "{preview}");
    let union = app
        .create_job(json!({
            "id": "union",
            "trigger": {"type": "any_of", "timezone": "Asia/Tokyo", "triggers": [
                {"type": "cron", "expr": "0 9 * * *"},
                {"type": "cron", "expr": "0 9,21 * * *"}
            ]},
            "target": {"url": "http://127.0.0.1:9/"}
        }))
        .await;
    assert_eq!(union["trigger"]["type"], "any_of", "{union}");
    let next = instant(&union["next_run_at"]);
    let tokyo = "Asia/Tokyo".parse().unwrap();
    let offset = cronhook::domain::trigger::utc_offset_s(next, tokyo);
    let local = next.naive_utc() + chrono::TimeDelta::seconds(offset.into());
    assert!(
        matches!(local.hour(), 9 | 21) && local.minute() == 0,
        "{union}"
    );
    // Unchanged on a PUT of the trigger it returned.
    let body = json!({"trigger": union["trigger"], "target": {"url": "http://127.0.0.1:9/"}});
    let replaced = app.put("/v1/jobs/union", body).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.json()["next_run_at"], union["next_run_at"]);
}

store_tests!(
    a_job_excluded_on_an_imported_holiday_never_fires_that_day,
    previous_allowed_fires_on_the_day_before_and_says_what_it_stands_for,
    a_calendar_change_replans_the_jobs_that_use_it,
    the_shipped_holiday_file_is_honoured_by_fire_times,
    bad_calendars_are_refused_naming_the_field,
    hashed_minutes_and_any_of_resolve_for_the_job,
);
