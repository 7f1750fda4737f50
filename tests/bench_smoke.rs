//! The benchmark harness, run at tiny sizes so that it cannot rot: the
//! real `cronhook-bench` binary driving the real `cronhook` binary against
//! PostgreSQL, with its receiver. It measures nothing here.

mod common;

use std::process::Command;

#[test]
fn the_benchmark_runs_its_scenarios_at_tiny_sizes() {
    let out = std::env::temp_dir().join(format!(
        "cronhook-bench-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_cronhook-bench"))
        .args([
            "--quick",
            "--cronhook-bin",
            env!("CARGO_BIN_EXE_cronhook"),
            "--out",
        ])
        .arg(&out)
        .args(["engine-burst", "burst", "steady", "aligned", "ceiling"])
        .env("DATABASE_URL", common::postgres_server_url())
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
    assert!(stdout.contains("deliveries per second"), "{stdout}");
}
