//! Triggers through the API on both stores: fire times of created jobs
//! and the preview endpoint, at fixed instants.

use crate::support as common;

use common::{Backend, TestApp};
use serde_json::{Value, json};

fn fire_times(preview: &Value) -> Vec<(String, String)> {
    preview["fire_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["at"].as_str().unwrap().to_string(),
                f["local"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn preview(app: &TestApp, body: Value) -> Value {
    let reply = app.post("/v1/triggers/preview", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

async fn preview_shows_dst_rules_in_utc_and_local_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A daily job never skips the spring-forward day: 02:30 does not
    // exist, so it fires at 03:00 EDT.
    let p = preview(
        &app,
        json!({"trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "America/New_York"},
               "after": "2026-03-07T00:00:00Z", "count": 3}),
    )
    .await;
    assert_eq!(p["timezone"], "America/New_York");
    assert_eq!(
        fire_times(&p),
        [
            (
                "2026-03-07T07:30:00Z".into(),
                "2026-03-07T02:30:00-05:00".into()
            ),
            (
                "2026-03-08T07:00:00Z".into(),
                "2026-03-08T03:00:00-04:00".into()
            ),
            (
                "2026-03-09T06:30:00Z".into(),
                "2026-03-09T02:30:00-04:00".into()
            ),
        ]
    );
    // ...and never doubles on the fall-back day.
    let p = preview(
        &app,
        json!({"trigger": {"type": "cron", "expr": "30 1 * * *", "timezone": "America/New_York"},
               "after": "2026-10-31T12:00:00Z", "count": 2}),
    )
    .await;
    assert_eq!(
        fire_times(&p),
        [
            (
                "2026-11-01T05:30:00Z".into(),
                "2026-11-01T01:30:00-04:00".into()
            ),
            (
                "2026-11-02T06:30:00Z".into(),
                "2026-11-02T01:30:00-05:00".into()
            ),
        ]
    );
    // Daylight-saving time goes on past 2099.
    let p = preview(
        &app,
        json!({"trigger": {"type": "cron", "expr": "0 12 * * *", "timezone": "America/New_York"},
               "after": "2100-06-01T00:00:00Z", "count": 1}),
    )
    .await;
    assert_eq!(
        fire_times(&p),
        [(
            "2100-06-01T16:00:00Z".into(),
            "2100-06-01T12:00:00-04:00".into()
        )]
    );
    // An hourly job fires in both passes of the repeated hour.
    let p = preview(
        &app,
        json!({"trigger": {"type": "cron", "expr": "0 * * * *", "timezone": "America/New_York"},
               "after": "2026-11-01T04:30:00Z", "count": 3}),
    )
    .await;
    let locals: Vec<_> = fire_times(&p).into_iter().map(|(_, local)| local).collect();
    assert_eq!(
        locals,
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T02:00:00-05:00"
        ]
    );
}

async fn preview_of_interval_and_date(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = preview(
        &app,
        json!({"trigger": {"type": "interval", "every_s": 5400, "start_at": "2026-01-01T00:00:00Z",
                           "end_at": "2026-01-01T03:00:00Z"},
               "after": "2025-12-31T00:00:00Z", "count": 10}),
    )
    .await;
    assert_eq!(p["timezone"], "UTC");
    let at: Vec<_> = fire_times(&p).into_iter().map(|(at, _)| at).collect();
    assert_eq!(
        at,
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:30:00Z",
            "2026-01-01T03:00:00Z"
        ]
    );

    // Without `after`, a past date is shown: a job created now fires it.
    let p = preview(
        &app,
        json!({"trigger": {"type": "date", "run_at": "2020-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(
        fire_times(&p),
        [(
            "2020-01-01T00:00:00Z".into(),
            "2020-01-01T00:00:00+00:00".into()
        )]
    );
    let p = preview(
        &app,
        json!({"trigger": {"type": "date", "run_at": "2020-01-01T00:00:00Z"}, "after": "2021-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(fire_times(&p), []);

    // Without start_at, the anchor is now + every_s, in microseconds like
    // every instant (a clock reading has nanoseconds).
    let p = preview(
        &app,
        json!({"trigger": {"type": "interval", "every_s": 60}, "count": 2}),
    )
    .await;
    for (at, local) in fire_times(&p) {
        let fraction = at.trim_end_matches('Z').rsplit_once(':').unwrap().1;
        assert!(fraction.len() <= "00.123456".len(), "{at}");
        assert_eq!(local, at.replace('Z', "+00:00"));
    }

    // Default count is 10; jitter does not move fire times.
    let p = preview(
        &app,
        json!({"trigger": {"type": "cron", "expr": "@hourly", "jitter_s": 600},
                                 "after": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let at: Vec<_> = fire_times(&p).into_iter().map(|(at, _)| at).collect();
    assert_eq!(at.len(), 10);
    assert_eq!(at[0], "2026-01-01T01:00:00Z");
    assert_eq!(at[9], "2026-01-01T10:00:00Z");
}

async fn preview_refuses_what_creation_refuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!({"type": "cron", "expr": "* * * *"}),
            "trigger.expr: expected 5 or 6 fields (6 with leading seconds), got 4",
        ),
        (
            json!({"type": "cron", "expr": "61 * * * *"}),
            "trigger.expr: minute field \"61\"",
        ),
        (
            json!({"type": "cron", "expr": "1,,2 * * * *"}),
            "trigger.expr: minute field \"1,,2\": empty list item",
        ),
        (
            json!({"type": "cron", "expr": "*/0 * * * *"}),
            "trigger.expr: minute field \"*/0\"",
        ),
        (
            json!({"type": "cron", "expr": "0 0 30 2 *"}),
            "trigger.expr: never fires",
        ),
        (
            json!({"type": "cron", "expr": "* 2 * 3 0L", "timezone": "Europe/Berlin"}),
            "trigger.expr: never fires in Europe/Berlin: every time it matches is skipped",
        ),
        (
            json!({"type": "cron", "expr": "0 0 * * monday"}),
            "trigger.expr: day-of-week field \"monday\": unknown name \"monday\"; expected sun-sat",
        ),
        (
            json!({"type": "cron", "expr": "0 0 1 mon *"}),
            "trigger.expr: month field \"mon\": \"mon\" is a day name, allowed only in the day-of-week field",
        ),
        (
            json!({"type": "cron", "expr": "0 0 1 1 * 2027"}),
            "trigger.expr: day-of-week field \"2027\": 2027 is out of range 0-7; a year field is not supported",
        ),
        (
            json!({"type": "cron", "expr": "* * * * *", "timezone": "Mars/Olympus"}),
            "trigger.timezone: unknown time zone \"Mars/Olympus\"",
        ),
        (
            json!({"type": "interval", "every_s": 0}),
            "trigger.every_s: must be at least 1",
        ),
        (
            json!({"type": "interval", "every_s": 315576001i64}),
            "trigger.every_s: must be at most 315576000 (ten years)",
        ),
        (
            json!({"type": "interval", "every_s": 60, "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}),
            "trigger.end_at: must not be before start_at",
        ),
        (
            json!({"type": "date", "run_at": "next tuesday"}),
            "trigger.run_at: expected an RFC 3339 instant",
        ),
        (
            json!({"type": "date", "run_at": "2026-01-01 00:00:00"}),
            "trigger.run_at: \"2026-01-01 00:00:00\" has no offset: add Z for UTC",
        ),
        (
            json!({"type": "date", "run_at": "next tuesday"}),
            "trigger.run_at: expected an RFC 3339 instant",
        ),
        (
            json!({"type": "interval", "every_s": 60, "start_at": "2026-06-30T23:59:60Z"}),
            "trigger.start_at: \"2026-06-30T23:59:60Z\" is a leap second; use :59 or the next minute's :00",
        ),
        (
            json!({"type": "cron", "expr": "@daily", "end_at": "2016-12-31T23:59:60.5Z"}),
            "trigger.end_at: \"2016-12-31T23:59:60.5Z\" is a leap second",
        ),
        (
            json!({"type": "date", "run_at": "2026-07-01T08:59:60+09:00"}),
            "trigger.run_at: \"2026-07-01T08:59:60+09:00\" is a leap second",
        ),
    ];
    for (trigger, expected) in cases {
        let detail = app
            .post("/v1/triggers/preview", json!({"trigger": trigger}))
            .await
            .problem(422);
        assert!(detail.starts_with(expected), "{trigger}: {detail}");
        // Job creation says the same.
        let job = json!({"trigger": trigger, "target": {"url": "http://example.com/"}});
        let detail = app.post("/v1/jobs", job).await.problem(422);
        assert!(detail.starts_with(expected), "{trigger}: {detail}");
    }
    for count in [0, 1001] {
        let detail = app
            .post(
                "/v1/triggers/preview",
                json!({"trigger": {"type": "cron", "expr": "@daily"}, "count": count}),
            )
            .await
            .problem(422);
        assert_eq!(
            detail,
            format!("count: must be between 1 and 1000, got {count}")
        );
    }
    assert_eq!(
        app.post("/v1/triggers/preview", json!({}))
            .await
            .problem(422),
        "trigger: is required"
    );
    // A leap second is refused wherever an instant is read.
    let detail = app
        .post(
            "/v1/triggers/preview",
            json!({"trigger": {"type": "cron", "expr": "@daily"}, "after": "2026-06-30T23:59:60Z"}),
        )
        .await
        .problem(422);
    assert_eq!(
        detail,
        "after: \"2026-06-30T23:59:60Z\" is a leap second; use :59 or the next minute's :00"
    );
    let mut forced = job("leap", json!({"type": "cron", "expr": "@daily"}));
    forced["next_run_at"] = json!("2026-06-30T23:59:60Z");
    let detail = app.post("/v1/jobs", forced).await.problem(422);
    assert!(
        detail.starts_with("next_run_at: \"2026-06-30T23:59:60Z\" is a leap second"),
        "{detail}"
    );
}

fn job(id: &str, trigger: Value) -> Value {
    json!({"id": id, "trigger": trigger, "target": {"url": "http://example.com/hook"}})
}

async fn created_jobs_get_fire_times_by_the_same_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = |id: &'static str, trigger: Value| {
        let app = &app;
        async move {
            let reply = app.post("/v1/jobs", job(id, trigger)).await;
            assert_eq!(reply.status, 201, "{}", reply.text);
            reply.json()
        }
    };
    // Far enough ahead that these stay future fire times for years: a
    // cron trigger fires from now on, whatever its start_at.
    // New York, 2037: spring forward on 8 March at 07:00Z.
    let j = created(
        "spring",
        json!({"type": "cron", "expr": "30 2 * * *", "timezone": "America/New_York",
                                      "start_at": "2037-03-08T05:00:00Z"}),
    )
    .await;
    assert_eq!(j["next_run_at"], "2037-03-08T07:00:00Z");
    // Berlin, 2037: fall back on 25 October; 02:30 fires at its first pass.
    let j = created(
        "fall",
        json!({"type": "cron", "expr": "30 2 * * *", "timezone": "Europe/Berlin",
                                    "start_at": "2037-10-24T23:00:00Z"}),
    )
    .await;
    assert_eq!(j["next_run_at"], "2037-10-25T00:30:00Z");
    // Lord Howe: a 30-minute shift on 2037-10-04 at 02:00 local (15:30Z the
    // day before).
    let j = created(
        "howe",
        json!({"type": "cron", "expr": "15 2 * * *", "timezone": "Australia/Lord_Howe",
                                    "start_at": "2037-10-03T14:00:00Z"}),
    )
    .await;
    assert_eq!(j["next_run_at"], "2037-10-03T15:30:00Z");

    // An interval without start_at is anchored at creation + every_s, and
    // that anchor is returned as start_at.
    let before = chrono::Utc::now();
    let j = created("every", json!({"type": "interval", "every_s": 3600})).await;
    let anchor =
        chrono::DateTime::parse_from_rfc3339(j["trigger"]["start_at"].as_str().unwrap()).unwrap();
    assert!(
        anchor >= before + chrono::TimeDelta::seconds(3599)
            && anchor <= chrono::Utc::now() + chrono::TimeDelta::seconds(3600)
    );
    assert_eq!(j["next_run_at"], j["trigger"]["start_at"]);

    // A past date still fires once: misfire grace decides.
    let j = created(
        "past",
        json!({"type": "date", "run_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(j["state"], "scheduled");
    assert_eq!(j["next_run_at"], "2020-01-01T00:00:00Z");

    // No fire time left: completed.
    let j = created(
        "over",
        json!({"type": "interval", "every_s": 60, "start_at": "2020-01-01T00:00:00Z",
                                    "end_at": "2020-01-02T00:00:00Z"}),
    )
    .await;
    assert_eq!(j["state"], "completed");
    assert_eq!(j["next_run_at"], Value::Null);

    // A forced first run time.
    let mut forced = job("forced", json!({"type": "cron", "expr": "@yearly"}));
    forced["next_run_at"] = json!("2026-12-24T18:00:00+01:00");
    let j = app.post("/v1/jobs", forced).await.json();
    assert_eq!(j["next_run_at"], "2026-12-24T17:00:00Z");

    // Jitter is stored; fire times are the planned ones.
    let j = created(
        "jittery",
        json!({"type": "cron", "expr": "0 0 1 1 *", "jitter_s": 30,
                                       "start_at": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(j["trigger"]["jitter_s"], 30);
    assert_eq!(j["next_run_at"], "2030-01-01T00:00:00Z");

    // A new trigger by PATCH recomputes next_run_at by the same rules.
    let j = app
        .patch(
            "/v1/jobs/jittery",
            json!({"trigger": {"type": "cron", "expr": "0 2 * * *", "timezone": "America/New_York",
                                                     "start_at": "2037-03-08T05:00:00Z"}}),
        )
        .await
        .json();
    assert_eq!(j["next_run_at"], "2037-03-08T07:00:00Z");
}

store_tests!(
    preview_shows_dst_rules_in_utc_and_local_time,
    preview_of_interval_and_date,
    preview_refuses_what_creation_refuses,
    created_jobs_get_fire_times_by_the_same_rules,
);
