//! Chains end to end on both stores (DESIGN.md §11.8): A → B → C, each
//! child run made once per parent end with its parent named (header,
//! `parent_run_id`, `parent.*` in a template); bad chains refused with the
//! field; a job others name kept unless `?drop_refs=true`; and, on
//! PostgreSQL, three instances with one killed mid-chain: still exactly one
//! child per parent end, counted at the receiver.

use crate::support as common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::process::ServiceProcess;
use common::receiver::{Answer, Receiver};
use common::{Backend, TestApp, TestDb, eventually};
use cronhook::domain::auth::Role;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
/// A trigger that never fires in a test: the job runs only when chained.
const NEVER: &str = "2099-01-01T00:00:00Z";

fn job(id: &str, url: String, chain: Value) -> Value {
    json!({"id": id, "trigger": {"type": "date", "run_at": NEVER},
           "target": {"url": url}, "retry": {"max_attempts": 1}, "chain": chain})
}

/// Distinct run ids (`webhook-id`) the receiver got on `path`, with the
/// parent each named.
fn runs_at(receiver: &Receiver, path: &str) -> BTreeMap<String, String> {
    receiver
        .received(path)
        .iter()
        .map(|r| {
            (
                r.header("webhook-id").to_string(),
                r.header("cronhook-parent-run-id").to_string(),
            )
        })
        .collect()
}

async fn a_chain_runs_each_child_once_per_parent_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("c", receiver.url("/c"), json!({})))
        .await;
    let mut b = job(
        "b",
        receiver.url("/b"),
        json!({"on_success": [{"job": "c"}]}),
    );
    b["target"]["template"] = json!(true);
    b["target"]["body"] = json!({"after": "{{ parent.run_id }}", "was": "{{ parent.status }}"});
    app.create_job(b).await;
    app.create_job(job("page", receiver.url("/page"), json!({})))
        .await;
    let a = app
        .create_job(job(
            "a",
            receiver.url("/a"),
            json!({"on_success": [{"job": "b"}], "on_failure": [{"job": "page"}]}),
        ))
        .await;
    assert_eq!(
        a["chain"]["on_success"][0],
        json!({"job": "b", "delay_s": 0})
    );

    // Two runs of A, each followed by one of B, then one of C.
    for _ in 0..2 {
        let reply = app.post_empty("/v1/jobs/a/run").await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let parent = reply.json()["id"].as_str().unwrap().to_string();
        let b_run = eventually(DEADLINE, "B's run after A's", || async {
            let runs = runs_at(&receiver, "/b");
            runs.into_iter()
                .find(|(_, p)| *p == parent)
                .map(|(id, _)| id)
        })
        .await;
        eventually(DEADLINE, "C's run after B's", || async {
            runs_at(&receiver, "/c")
                .values()
                .any(|p| *p == b_run)
                .then_some(())
        })
        .await;
        let run = app.get(&format!("/v1/runs/{b_run}")).await.json();
        assert_eq!(
            (&run["cause"], &run["parent_run_id"]),
            (&json!("chain"), &json!(parent)),
            "{run}"
        );
        let sent = receiver
            .received("/b")
            .into_iter()
            .find(|r| r.header("webhook-id") == b_run)
            .unwrap();
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(body, json!({"after": parent, "was": "succeeded"}));
    }
    // Every C run has finished: nothing more is made.
    eventually(DEADLINE, "C's runs ended", || async {
        let runs = app.get("/v1/jobs/c/runs").await.json();
        let items = runs["items"].as_array()?.clone();
        (items.len() == 2 && items.iter().all(|r| r["status"] == "succeeded")).then_some(())
    })
    .await;
    assert_eq!(runs_at(&receiver, "/b").len(), 2);
    assert_eq!(runs_at(&receiver, "/c").len(), 2);
    assert!(receiver.received("/page").is_empty());

    // A failed run starts its on_failure child, not its on_success one.
    receiver.script("/a", [Answer::Status(500)]);
    let reply = app.post_empty("/v1/jobs/a/run").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let failed = reply.json()["id"].as_str().unwrap().to_string();
    eventually(DEADLINE, "the page after A failed", || async {
        runs_at(&receiver, "/page")
            .values()
            .any(|p| *p == failed)
            .then_some(())
    })
    .await;
    assert_eq!(runs_at(&receiver, "/b").len(), 2);

    // A paused child takes no chained run: made in the transaction that
    // records the parent's end, it would be there once that run is.
    assert_eq!(app.post_empty("/v1/jobs/b/pause").await.status, 200);
    let reply = app.post_empty("/v1/jobs/a/run").await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let parent = reply.json()["id"].as_str().unwrap().to_string();
    common::run_when(&app.client, &app.base, &parent, "A's run ended", |run| {
        run["finished_at"].is_string()
    })
    .await;
    let b_runs = app.get("/v1/jobs/b/runs").await.json();
    assert_eq!(b_runs["items"].as_array().unwrap().len(), 2, "{b_runs}");
}

async fn bad_chains_are_refused_and_a_named_job_is_kept(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    app.create_job(job("b", receiver.url("/b"), json!({})))
        .await;
    let refused = |reply: common::Reply| reply.problem_field(422);
    let (field, detail) = refused(
        app.post(
            "/v1/jobs",
            job(
                "a",
                receiver.url("/a"),
                json!({"on_success": [{"job": "b"}, {"job": "ghost"}]}),
            ),
        )
        .await,
    );
    assert_eq!(field, "chain.on_success[1].job");
    assert!(detail.contains("\"ghost\""), "{detail}");
    app.create_job(job(
        "a",
        receiver.url("/a"),
        json!({"on_success": [{"job": "b"}]}),
    ))
    .await;
    // b → a would close a → b → a.
    let (field, detail) = refused(
        app.put(
            "/v1/jobs/b",
            job(
                "b",
                receiver.url("/b"),
                json!({"on_failure": [{"job": "a"}]}),
            ),
        )
        .await,
    );
    assert_eq!(field, "chain.on_failure[0].job");
    assert!(detail.contains("b → a → b"), "{detail}");
    let (field, _) = refused(
        app.patch(
            "/v1/jobs/b",
            json!({"chain": {"on_complete": [{"job": "b"}]}}),
        )
        .await,
    );
    assert_eq!(field, "chain.on_complete[0].job");

    // A job named by another's chain stays, unless its edges go with it.
    let a = app.get("/v1/jobs/a").await.json();
    assert_eq!(
        a["chain"],
        json!({"on_success": [{"job": "b", "delay_s": 0}]}),
        "{a}"
    );
    let kept = app.delete("/v1/jobs/b").await;
    assert!(kept.problem(409).contains("chain of a"), "{}", kept.text);
    assert_eq!(app.get("/v1/jobs/b").await.status, 200);
    let gone = app.delete("/v1/jobs/b?drop_refs=true").await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let a = app.get("/v1/jobs/a").await.json();
    assert!(a.get("chain").is_none(), "{a}");
    let trail = app.get("/v1/audit?target=job/a").await.json();
    let dropped = trail["items"].as_array().unwrap().iter().any(|record| {
        record["action"] == "job.updated"
            && record["changes"]
                .as_array()
                .is_some_and(|ops| ops.contains(&json!({"op": "remove", "path": "/chain"})))
    });
    assert!(dropped, "{trail}");

    // Another tenant's job is not there to name.
    let root = app.make_token(Role::Root, "default").await;
    let other = app.make_token(Role::Write, "other").await;
    app.token = Some(other);
    app.create_job(job("theirs", receiver.url("/t"), json!({})))
        .await;
    app.token = Some(root);
    let (field, _) = refused(
        app.post(
            "/v1/jobs",
            job(
                "mine",
                receiver.url("/m"),
                json!({"on_success": [{"job": "theirs"}]}),
            ),
        )
        .await,
    );
    assert_eq!(field, "chain.on_success[0].job");
}

/// A bundle may list a job before the job its chain names (§11.9).
async fn a_bundle_applies_a_chain_in_any_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start().await;
    let bundle = json!({"apiVersion": "cronhook/v1", "kind": "Bundle", "jobs": [
        job("extract", receiver.url("/e"), json!({"on_success": [{"job": "load", "delay_s": 5}]})),
        job("load", receiver.url("/l"), json!({})),
    ]});
    let reply = app.post("/v1/apply", bundle.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let extract = app.get("/v1/jobs/extract").await.json();
    assert_eq!(
        extract["chain"]["on_success"][0],
        json!({"job": "load", "delay_s": 5})
    );
    // The same bundle again changes nothing.
    let again = app.post("/v1/apply", bundle).await.json();
    assert_eq!(
        again["unchanged"].as_array().map(Vec::len),
        Some(2),
        "{again}"
    );
}

crate::store_tests!(
    a_bundle_applies_a_chain_in_any_order,
    a_chain_runs_each_child_once_per_parent_end,
    bad_chains_are_refused_and_a_named_job_is_kept,
);

/// Three instances on one PostgreSQL database; A fires every second
/// until eight of its runs were sent, A → B → C; one instance is killed
/// (SIGKILL) after A's third request. Each A run that succeeded makes one
/// B run, each B run one C run: counted by distinct run ids at the
/// receiver (a request cut off by the kill is sent again with its id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_and_a_kill_make_one_child_per_parent_end() {
    let db = TestDb::postgres().await;
    let args = ["--instance-timeout-s", "3"];
    let mut instances: Vec<ServiceProcess> = (0..3)
        .map(|_| ServiceProcess::start(&db.url, &args, &[]))
        .collect();
    let receiver = Receiver::start().await;
    let client = common::client();
    let base = instances[2].base.clone();
    let create = |mut body: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            // Room for every chained run at once, and for an attempt cut
            // off by the kill to be sent again.
            body["max_instances"] = json!(8);
            body["retry"] = json!({"max_attempts": 3});
            let reply = client
                .post(format!("{base}/v1/jobs"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap());
        }
    };
    create(job("c", receiver.url("/c"), json!({}))).await;
    create(job(
        "b",
        receiver.url("/b"),
        json!({"on_success": [{"job": "c"}]}),
    ))
    .await;
    create(
        json!({"id": "a", "trigger": {"type": "interval", "every_s": 1},
                  "max_runs": 8, "target": {"url": receiver.url("/a")},
                  "chain": {"on_success": [{"job": "b"}]}}),
    )
    .await;
    eventually(DEADLINE, "A's third run", || async {
        (runs_at(&receiver, "/a").len() >= 3).then_some(())
    })
    .await;
    instances[0].kill();

    // The runs of `job` once none is in flight and `sent` of them
    // succeeded (a run over max_instances is skipped, not sent).
    let settled = |job: &'static str, sent: usize| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            eventually(Duration::from_secs(120), job, || async {
                let runs: Value = client
                    .get(format!("{base}/v1/jobs/{job}/runs?limit=100"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let items = runs["items"].as_array()?.clone();
                let open = items.iter().any(|r| r["finished_at"].is_null());
                let ok: BTreeSet<String> = items
                    .iter()
                    .filter(|r| r["status"] == "succeeded")
                    .map(|r| r["id"].as_str().unwrap().to_string())
                    .collect();
                (!open && ok.len() == sent).then_some(ok)
            })
            .await
        }
    };
    let a_ids = settled("a", 8).await;
    let b_ids = settled("b", 8).await;
    settled("c", 8).await;
    // At the receiver: one B per A run, one C per B run, no other.
    let b_parents: Vec<String> = runs_at(&receiver, "/b").into_values().collect();
    let c_parents: Vec<String> = runs_at(&receiver, "/c").into_values().collect();
    assert_eq!(b_parents.len(), 8, "{b_parents:?}");
    assert_eq!(b_parents.iter().cloned().collect::<BTreeSet<_>>(), a_ids);
    assert_eq!(c_parents.len(), 8, "{c_parents:?}");
    assert_eq!(c_parents.iter().cloned().collect::<BTreeSet<_>>(), b_ids);
    for instance in &mut instances[1..] {
        instance.stop();
    }
}
