//! `clients/python`: the Python client a user of APScheduler installs
//! (`pip install ./clients/python`), run against the service on both stores
//! by `clients/python/tests/check_client.py`: APScheduler's classic job in
//! one call, its run seen by the event iterator, its request verified,
//! the stream resumed by `Last-Event-ID`, refusals as exceptions.
//! `scripts/test` installs the client and httpx from PyPI into a virtual
//! environment under target/.

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Backend, TestApp};

fn python() -> PathBuf {
    let venv = std::env::var_os("CRONHOOK_PYTHON_CLIENT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/python-client-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests with `bash scripts/test`, which installs \
         clients/python there",
        python.display()
    );
    python
}

async fn the_python_client_ports_an_apscheduler_job_and_sees_its_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/tests/check_client.py");
    let python = python();
    let url = app.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("CRONHOOK_URL", url.trim_end_matches('/'))
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("python client: ok"),
        "the client's check failed:\n{stdout}\n{stderr}"
    );
}

store_tests!(the_python_client_ports_an_apscheduler_job_and_sees_its_run);
