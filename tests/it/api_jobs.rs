//! The job API end to end: the real service on a real socket, each test
//! with its own database, on both stores.

use crate::support as common;

use common::{Backend, TestApp};
use serde_json::{Value, json};

fn job(id: &str) -> Value {
    json!({
        "id": id,
        "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Asia/Seoul"},
        "target": {"url": "https://example.com/hooks/report", "headers": {"X-Team": "data"}, "body": {"report": "daily"}},
    })
}

async fn create_read_list_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.post("/v1/jobs", job("nightly-report")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.headers["location"], "/v1/jobs/nightly-report");
    let body = created.json();
    assert_eq!(body["id"], "nightly-report");
    assert_eq!(body["state"], "scheduled");
    assert_eq!(body["coalesce"], true);
    assert_eq!(body["max_instances"], 1);
    assert_eq!(body["misfire_grace_s"], Value::Null);
    assert_eq!(
        body["retry"],
        json!({"max_attempts": 3, "backoff_initial_s": 1, "backoff_max_s": 300})
    );
    assert_eq!(body["target"]["method"], "POST");
    assert_eq!(body["target"]["headers"], json!({"x-team": "data"}));
    assert_eq!(body["trigger"]["timezone"], "Asia/Seoul");
    assert_eq!(body["last_run"], Value::Null);
    // 02:30 in Seoul is 17:30 UTC.
    assert!(
        body["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("T17:30:00Z"),
        "{body}"
    );

    let fetched = app.get("/v1/jobs/nightly-report").await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), body);

    let list = app.get("/v1/jobs").await.json();
    assert_eq!(list["items"], json!([body]));
    assert_eq!(list["next_cursor"], Value::Null);

    let deleted = app.delete("/v1/jobs/nightly-report").await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty());
    let detail = app.get("/v1/jobs/nightly-report").await.problem(404);
    assert_eq!(detail, "no job with id \"nightly-report\"");
    app.delete("/v1/jobs/nightly-report").await.problem(404);
}

async fn duplicate_ids_conflict_and_missing_ids_are_generated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.post("/v1/jobs", job("a")).await.status, 201);
    let detail = app.post("/v1/jobs", job("a")).await.problem(409);
    assert_eq!(detail, "a job with id \"a\" already exists");

    let mut anonymous = job("x");
    anonymous.as_object_mut().unwrap().remove("id");
    let body = app.post("/v1/jobs", anonymous).await.json();
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).expect("a UUID");
    assert_eq!(id.get_version_num(), 7);
}

async fn put_creates_then_replaces_keeping_created_at(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.put("/v1/jobs/report", job("report")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first = first.json();

    let mut replacement = job("report");
    replacement["name"] = json!("Report v2");
    replacement["trigger"] = json!({"type": "interval", "every_s": 3600});
    let mut without_id = replacement.clone();
    without_id.as_object_mut().unwrap().remove("id");
    let second = app.put("/v1/jobs/report", without_id).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let second = second.json();
    assert_eq!(second["name"], "Report v2");
    assert_eq!(second["trigger"]["type"], "interval");
    assert_eq!(second["created_at"], first["created_at"]);
    assert_ne!(second["next_run_at"], first["next_run_at"]);
    // The anchor was set at replacement: it is the next fire time.
    assert_eq!(second["next_run_at"], second["trigger"]["start_at"]);

    // Sending the same interval again keeps its grid.
    let third = app.put("/v1/jobs/report", replacement).await.json();
    assert_eq!(third["trigger"]["start_at"], second["trigger"]["start_at"]);
    assert_eq!(third["next_run_at"], second["next_run_at"]);

    let detail = app.put("/v1/jobs/report", job("other")).await.problem(422);
    assert_eq!(detail, "id: \"other\" differs from the path's \"report\"");
}

async fn patch_changes_only_what_it_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let original = app.post("/v1/jobs", job("p")).await.json();

    let renamed = app
        .patch(
            "/v1/jobs/p",
            json!({"name": "Renamed", "metadata": {"owner": "ops"}}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let renamed = renamed.json();
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["metadata"], json!({"owner": "ops"}));
    assert_eq!(renamed["trigger"], original["trigger"]);
    assert_eq!(renamed["target"], original["target"]);
    assert_eq!(renamed["next_run_at"], original["next_run_at"]);

    let retimed = app
        .patch(
            "/v1/jobs/p",
            json!({"trigger": {"type": "date", "run_at": "2030-01-01T00:00:00Z"}}),
        )
        .await
        .json();
    assert_eq!(retimed["next_run_at"], "2030-01-01T00:00:00Z");
    assert_eq!(retimed["name"], "Renamed");

    let cleared = app
        .patch("/v1/jobs/p", json!({"name": null, "misfire_grace_s": 60}))
        .await
        .json();
    assert_eq!(cleared["name"], Value::Null);
    assert_eq!(cleared["misfire_grace_s"], 60);

    assert_eq!(
        app.patch("/v1/jobs/p", json!({"trigger": null}))
            .await
            .problem(422),
        "trigger: may not be null"
    );
    assert_eq!(
        app.patch("/v1/jobs/p", json!({"coalesce": null}))
            .await
            .problem(422),
        "coalesce: may not be null"
    );
    let detail = app
        .patch("/v1/jobs/p", json!({"target": {"url": "ftp://x"}}))
        .await
        .problem(422);
    assert!(
        detail.starts_with("target.url: unsupported scheme \"ftp\""),
        "{detail}"
    );
    let detail = app
        .patch("/v1/jobs/p", json!({"state": "paused"}))
        .await
        .problem(422);
    assert!(detail.starts_with("state: unknown field"), "{detail}");
    let detail = app
        .patch("/v1/jobs/p", json!({"id": "q"}))
        .await
        .problem(422);
    assert!(detail.starts_with("id: differs from the path"), "{detail}");
    let detail = app.patch("/v1/jobs/p", json!([1])).await.problem(422);
    assert_eq!(detail, "body: expected a JSON object");
    app.patch("/v1/jobs/nope", json!({"name": "x"}))
        .await
        .problem(404);

    // A refused patch changed nothing.
    assert_eq!(app.get("/v1/jobs/p").await.json()["name"], Value::Null);
}

async fn pause_and_resume(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut spec = job("pr");
    spec["trigger"] =
        json!({"type": "interval", "every_s": 60, "start_at": "2026-01-01T00:00:00Z"});
    app.post("/v1/jobs", spec).await;

    let paused = app.post_empty("/v1/jobs/pr/pause").await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let paused = paused.json();
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_run_at"], Value::Null);
    // Pausing twice is harmless.
    assert_eq!(
        app.post_empty("/v1/jobs/pr/pause").await.json()["state"],
        "paused"
    );

    let resumed = app.post_empty("/v1/jobs/pr/resume").await.json();
    assert_eq!(resumed["state"], "scheduled");
    assert_eq!(resumed["paused"], false);
    // Recomputed from now: the next whole minute on the grid.
    let next =
        chrono::DateTime::parse_from_rfc3339(resumed["next_run_at"].as_str().unwrap()).unwrap();
    let now = chrono::Utc::now();
    assert!(
        next > now - chrono::TimeDelta::seconds(1) && next <= now + chrono::TimeDelta::seconds(61),
        "{next}"
    );
    assert_eq!(next.timestamp() % 60, 0);

    // Un-pausing by PUT is a resume: a date that passed while paused is
    // not delivered.
    let mut gone = job("gone-by");
    gone["paused"] = json!(true);
    gone["trigger"] = json!({"type": "date", "run_at": "2026-01-01T00:00:00Z"});
    assert_eq!(
        app.post("/v1/jobs", gone.clone()).await.json()["state"],
        "paused"
    );
    gone["paused"] = json!(false);
    let replaced = app.put("/v1/jobs/gone-by", gone).await.json();
    assert_eq!(replaced["state"], "completed", "{replaced}");
    assert_eq!(replaced["next_run_at"], Value::Null);

    // A paused job created as such, resumed by PATCH.
    let mut spec = job("pp");
    spec["paused"] = json!(true);
    assert_eq!(
        app.post("/v1/jobs", spec.clone()).await.json()["state"],
        "paused"
    );
    assert_eq!(
        app.patch("/v1/jobs/pp", json!({"paused": false}))
            .await
            .json()["state"],
        "scheduled"
    );

    // next_run_at together with paused is refused.
    spec["id"] = json!("pq");
    spec["next_run_at"] = json!("2026-11-23T10:00:00Z");
    let detail = app.post("/v1/jobs", spec).await.problem(422);
    assert!(
        detail.starts_with("next_run_at: cannot be given with paused: true"),
        "{detail}"
    );

    // A job whose trigger has no fire time left is completed: 409 to pause.
    let mut done = job("done");
    done["trigger"] =
        json!({"type": "cron", "expr": "* * * * *", "end_at": "2020-01-01T00:00:00Z"});
    let done = app.post("/v1/jobs", done).await.json();
    assert_eq!(done["state"], "completed");
    assert_eq!(done["next_run_at"], Value::Null);
    let detail = app.post_empty("/v1/jobs/done/pause").await.problem(409);
    assert_eq!(detail, "job done is completed; there is nothing to pause");
    app.post_empty("/v1/jobs/nope/pause").await.problem(404);
    app.post_empty("/v1/jobs/nope/resume").await.problem(404);
}

async fn lists_paginate_and_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for id in ["e", "a", "d", "c", "b"] {
        let mut spec = job(id);
        if id == "c" || id == "e" {
            spec["paused"] = json!(true);
        }
        assert_eq!(app.post("/v1/jobs", spec).await.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = app.get(&path).await.json();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/jobs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    let paused = app.get("/v1/jobs?state=paused").await.json();
    let ids: Vec<_> = paused["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, [json!("c"), json!("e")]);
    // Search in ids and names, with the state filter.
    let found = app.get("/v1/jobs?q=E&state=paused").await.json();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], "e");
    assert!(
        app.get("/v1/jobs?q=a%00b")
            .await
            .problem(422)
            .starts_with("q: must not contain a NUL character")
    );
    let long = "x".repeat(1001);
    assert!(
        app.get(&format!("/v1/jobs?q={long}"))
            .await
            .problem(422)
            .starts_with("q: must be at most 1000 characters")
    );

    assert!(
        app.get("/v1/jobs?limit=0")
            .await
            .problem(422)
            .starts_with("limit: must be an integer from 1 to 500")
    );
    assert!(
        app.get("/v1/jobs?limit=501")
            .await
            .problem(422)
            .starts_with("limit:")
    );
    assert!(
        app.get("/v1/jobs?state=bogus")
            .await
            .problem(422)
            .starts_with("state: expected scheduled, paused or completed")
    );
    assert!(
        app.get("/v1/jobs?cursor=%21%21")
            .await
            .problem(422)
            .starts_with("cursor:")
    );

    // Labels, and the Kubernetes selector over them (§11.9).
    for (id, labels) in [
        ("a", json!({"team": "data", "tier": "gold"})),
        ("b", json!({"team": "data", "env": "dev"})),
        ("d", json!({"team": "web", "cronhook.io/owner": "ops"})),
    ] {
        let reply = app
            .patch(&format!("/v1/jobs/{id}"), json!({ "labels": labels }))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["labels"], labels);
    }
    assert_eq!(app.get("/v1/jobs/c").await.json()["labels"], json!({}));
    let app = &app;
    let picked = |selector: &'static str| async move {
        let page = app
            .get(&format!("/v1/jobs?selector={}", urlencode(selector)))
            .await
            .json();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(picked("team=data,env!=dev").await, ["a"]);
    assert_eq!(picked("team in (web,data),!tier").await, ["b", "d"]);
    assert_eq!(picked("cronhook.io/owner=ops").await, ["d"]);
    assert_eq!(picked("!team").await, ["c", "e"]);
    assert_eq!(
        app.get("/v1/jobs?selector=team%20in%20gold")
            .await
            .problem(422),
        "selector: at character 9: `team`: expected `(`, found `gold`"
    );
    let refused = app
        .patch("/v1/jobs/a", json!({"labels": {"Team!": "x"}}))
        .await
        .problem(422);
    assert!(
        refused.starts_with("labels.Team!: the key's name"),
        "{refused}"
    );
    let refused = app
        .patch("/v1/jobs/a", json!({"labels": {"team": 7}}))
        .await
        .problem(422);
    assert_eq!(refused, "labels.team: must be a string");
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn bad_input_gets_a_problem_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |body: Value| app.post("/v1/jobs", body);

    // Malformed JSON.
    let reply = app
        .client
        .post(app.url("/v1/jobs"))
        .header("content-type", "application/json")
        .body("{\"trigger\": ")
        .send()
        .await
        .unwrap();
    let detail = common::Reply::from(reply).await.problem(400);
    assert!(detail.starts_with("malformed JSON"), "{detail}");

    // Not JSON at all.
    let reply = app
        .client
        .post(app.url("/v1/jobs"))
        .body("id=x")
        .send()
        .await
        .unwrap();
    common::Reply::from(reply).await.problem(415);

    let mut unknown = job("u");
    unknown["colour"] = json!("blue");
    assert!(
        post(unknown)
            .await
            .problem(422)
            .starts_with("colour: unknown field")
    );
    let mut unknown = job("u");
    unknown["trigger"]["exp"] = json!("x");
    assert!(
        post(unknown)
            .await
            .problem(422)
            .starts_with("trigger.exp: unknown field")
    );

    let mut missing = job("m");
    missing.as_object_mut().unwrap().remove("trigger");
    assert_eq!(post(missing).await.problem(422), "trigger: is required");
    let mut missing = job("m");
    missing.as_object_mut().unwrap().remove("target");
    assert_eq!(
        post(missing).await.problem(422),
        "target: is required (or null, with monitor, for a monitor-only job)"
    );

    let mut scheme = job("s");
    scheme["target"]["url"] = json!("ftp://example.com/x");
    assert_eq!(
        post(scheme).await.problem(422),
        "target.url: unsupported scheme \"ftp\"; expected http or https"
    );

    assert_eq!(
        post(job("bad/id")).await.problem(422),
        "id: contains '/'; only A-Z a-z 0-9 . _ : - are allowed"
    );
    assert_eq!(
        post(job(&"x".repeat(201))).await.problem(422),
        "id: must be at most 200 characters, got 201"
    );
    assert_eq!(post(job(&"x".repeat(200))).await.status, 201);

    for n in [0, -1] {
        let mut spec = job("mi");
        spec["max_instances"] = json!(n);
        assert_eq!(
            post(spec).await.problem(422),
            format!("max_instances: must be between 1 and 1000, got {n}")
        );
    }
    let mut wrong_type = job("wt");
    wrong_type["max_instances"] = json!("two");
    assert!(
        post(wrong_type)
            .await
            .problem(422)
            .starts_with("max_instances: invalid type")
    );

    let mut header = job("h");
    header["target"]["headers"] = json!({"webhook-id": "x"});
    assert_eq!(
        post(header).await.problem(422),
        "target.headers.webhook-id: is set by Cronhook and may not be given"
    );

    let mut cron = job("c");
    cron["trigger"]["expr"] = json!("61 * * * *");
    let detail = post(cron).await.problem(422);
    assert!(
        detail.starts_with("trigger.expr: minute field \"61\""),
        "{detail}"
    );

    let mut header = job("ua");
    header["target"]["headers"] = json!({"User-Agent": "mine/1.0"});
    assert_eq!(
        post(header).await.problem(422),
        "target.headers.User-Agent: is set by Cronhook and may not be given"
    );

    // Hop-by-hop headers would instruct the connection, not the target;
    // bytes beyond visible ASCII would reach it raw.
    for name in [
        "TE",
        "upgrade",
        "Keep-Alive",
        "trailer",
        "Proxy-Authorization",
    ] {
        let mut header = job("hop");
        header["target"]["headers"] = json!({name: "x"});
        let detail = post(header).await.problem(422);
        assert!(
            detail.starts_with(&format!("target.headers.{name}: is a hop-by-hop header")),
            "{detail}"
        );
    }
    let mut header = job("utf8");
    header["target"]["headers"] = json!({"X-Name": "Zoë"});
    assert_eq!(
        post(header).await.problem(422),
        "target.headers.X-Name: is not a valid header value (visible ASCII, at most 8192 bytes)"
    );
    for bad in [0, 1_001] {
        let mut catchup = job("catchup");
        catchup["catchup_max"] = json!(bad);
        let detail = post(catchup).await.problem(422);
        assert!(
            detail.starts_with("catchup_max: must be between 1 and 1000"),
            "{detail}"
        );
    }

    // Nothing PostgreSQL cannot store, and no instant RFC 3339 cannot write.
    let mut nul = job("nul");
    nul["name"] = json!("a\u{0}b");
    assert!(
        post(nul)
            .await
            .problem(422)
            .starts_with("name: must not contain a NUL character")
    );
    let mut nul = job("nul");
    nul["metadata"] = json!({"deep": {"list": [1, "x\u{0}"]}});
    assert!(
        post(nul)
            .await
            .problem(422)
            .starts_with("metadata.deep.list[1]: must not contain a NUL")
    );
    let mut far = job("far");
    far["trigger"] = json!({"type": "date", "run_at": "9999-12-31T23:59:59-01:00"});
    let detail = post(far).await.problem(422);
    assert!(
        detail.starts_with("trigger.run_at:") && detail.contains("outside the years 0001 to 9999"),
        "{detail}"
    );
    let mut last = job("last-instant");
    last["trigger"] =
        json!({"type": "interval", "every_s": 315576000i64, "start_at": "9999-12-31T23:59:59Z"});
    let last = post(last).await.json();
    assert_eq!(last["next_run_at"], "9999-12-31T23:59:59Z");

    // A body over 1 MiB.
    let mut huge = job("huge");
    huge["metadata"] = json!({"blob": "x".repeat(1024 * 1024)});
    let detail = post(huge).await.problem(413);
    assert_eq!(detail, "request body is larger than 1048576 bytes");

    // Unknown job, unknown route, wrong method.
    app.get("/v1/jobs/nope").await.problem(404);
    app.get("/v1/nothing").await.problem(404);
    app.request(reqwest::Method::DELETE, "/v1/jobs", None)
        .await
        .problem(405);

    // None of it was stored but the two valid jobs.
    let list = app.get("/v1/jobs").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

async fn jobs_survive_a_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let created = app.post("/v1/jobs", job("durable")).await.json();
    app.restart().await;
    let fetched = app.get("/v1/jobs/durable").await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), created);
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/healthz").await.json(), json!({"status": "ok"}));
    let store = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    assert_eq!(
        app.get("/readyz").await.json(),
        json!({"status": "ok", "store": store})
    );
    let reply = app.get("/healthz").await;
    assert!(reply.headers.contains_key("x-request-id"));
}

/// Found by Schemathesis: numbers at the edge of a double, in metadata and
/// bodies, come back as they were sent (PostgreSQL's JSONB rounded them
/// past the range of a double, and reading the job back failed).
async fn free_form_json_reads_back_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let odd = json!({"max": 1.7976931348623157e308, "tiny": -7.624524091444759e306,
                     "big": 18446744073709551615u64, "text": "\u{c4}\u{dc}", "nested": [{"a": null}]});
    let mut body = job("odd");
    body["metadata"] = odd.clone();
    body["target"]["body"] = odd.clone();
    let created = app.post("/v1/jobs", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let read = app.get("/v1/jobs/odd").await.json();
    assert_eq!(read["metadata"], odd);
    assert_eq!(read["target"]["body"], odd);
    let patched = app
        .patch(
            "/v1/jobs/odd",
            json!({"metadata": {"max": null, "more": 5e-324}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["metadata"]["more"], json!(5e-324));
    assert!(patched.json()["metadata"].get("max").is_none());
}

store_tests!(
    free_form_json_reads_back_exactly,
    create_read_list_delete,
    duplicate_ids_conflict_and_missing_ids_are_generated,
    put_creates_then_replaces_keeping_created_at,
    patch_changes_only_what_it_names,
    pause_and_resume,
    lists_paginate_and_filter,
    bad_input_gets_a_problem_naming_the_field,
    jobs_survive_a_restart,
    health_and_readiness,
);
