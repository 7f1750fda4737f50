//! The benchmark harness, run at tiny sizes so that it cannot rot: the
//! real `cronhook-bench` binary driving the real `cronhook` binary against
//! PostgreSQL, with its receiver. It measures nothing here.

use std::path::PathBuf;
use std::process::Command;

/// The PostgreSQL server the scenarios create their databases on.
fn postgres_server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
    }
}

/// The service's binary, built beside this harness by the workspace's
/// tests (`cargo test --workspace`, as `scripts/test` runs them).
fn cronhook_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cronhook-bench")).with_file_name("cronhook");
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build` first, or the workspace's tests (`cargo test --workspace`)",
        bin.display()
    );
    bin
}

#[test]
fn the_benchmark_runs_its_scenarios_at_tiny_sizes() {
    let out = std::env::temp_dir().join(format!(
        "cronhook-bench-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_cronhook-bench"))
        .arg("--quick")
        .arg("--cronhook-bin")
        .arg(cronhook_bin())
        .arg("--out")
        .arg(&out)
        .args([
            "engine-burst",
            "burst",
            "flow",
            "agenda",
            "steady",
            "aligned",
            "ceiling",
            "chaos",
        ])
        .env("DATABASE_URL", postgres_server_url())
        .output()
        .expect("cronhook-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cronhook-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(results["engine-burst"]["jobs"], 50);
    assert!(results["burst"]["deliveries_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        results["flow"]["exactness"]["missing"], 0,
        "{}",
        results["flow"]
    );
    for scenario in ["burst", "steady", "aligned"] {
        let exact = &results[scenario]["exactness"];
        assert!(
            exact["expected"].as_u64().unwrap() > 0,
            "{scenario}: {exact}"
        );
        assert_eq!(exact["missing"], 0, "{scenario}: {exact}");
        assert_eq!(exact["doubled"], 0, "{scenario}: {exact}");
    }
    assert!(results["ceiling"]["rows_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        results["agenda"]["items"].as_u64().unwrap() > 40,
        "{}",
        results["agenda"]
    );
    // Chaos, small: one instance killed; nothing lost, doubled or left
    // (PostgreSQL is shared with the suite, so it is not restarted here).
    let chaos = &results["chaos"];
    assert_eq!(chaos["instances_killed"], 1, "{chaos}");
    assert!(chaos["occurrences"].as_u64().unwrap() > 0, "{chaos}");
    for zero in [
        "occurrences_without_run",
        "occurrences_doubled",
        "runs_lost",
        "runs_unfinished",
    ] {
        assert_eq!(chaos[zero], 0, "{zero}: {chaos}");
    }
    assert_eq!(chaos["postgres_restart_s"], serde_json::Value::Null);
    assert!(stdout.contains("deliveries per second"), "{stdout}");
}
