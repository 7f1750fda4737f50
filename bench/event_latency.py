#!/usr/bin/env python3
"""How long an event written through one instance takes to reach a stream
open on another (issue 15's goal: within 100 ms).

Starts two `cronhook serve` processes on one fresh PostgreSQL database,
opens GET /v1/events/stream on the second, creates jobs through the first
one at a time (every 50 ms), and prints, per job.created event, the time
from the create's 201 answer (the change committed) to the event's arrival
on the other instance's stream: p50, p90, p99, max.

    python3 bench/event_latency.py [path/to/cronhook] [--events N]

DATABASE_URL names the PostgreSQL server (default
postgres://postgres@127.0.0.1:5432/postgres); the database
cronhook_event_latency is made and dropped there.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

args = [a for a in sys.argv[1:] if not a.startswith("--")]
binary = args[0] if args else "target/release/cronhook"
count = 200
if "--events" in sys.argv:
    count = int(sys.argv[sys.argv.index("--events") + 1])
server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
db = "cronhook_event_latency"


def psql(sql):
    subprocess.run(["psql", server, "-XAtqc", sql], check=True, stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{base} did not become ready")


psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
psql(f"CREATE DATABASE {db}")
key = subprocess.run([binary, "keygen"], check=True, capture_output=True, text=True).stdout.strip()
env = dict(os.environ, DATABASE_URL=server.rsplit("/", 1)[0] + "/" + db,
           CRONHOOK_ENCRYPTION_KEY=key, RUST_LOG="warn")
ports = [free_port(), free_port()]
procs = [subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{p}"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
writer, reader = (f"http://127.0.0.1:{p}" for p in ports)
arrived = {}
try:
    for base in (writer, reader):
        wait_ready(base)

    def follow():
        with urllib.request.urlopen(reader + "/v1/events/stream?type=job.created", timeout=600) as stream:
            for line in stream:
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    arrived[event["job_id"]] = time.monotonic()
                    if len(arrived) >= count + 1:
                        return

    threading.Thread(target=follow, daemon=True).start()
    # A first job opens the stream's live part; it is not counted.
    answered = {}
    for i in range(count + 1):
        job = {"id": f"lat-{i}", "trigger": {"type": "cron", "expr": "@yearly"},
               "target": {"url": "https://example.com/hook"}}
        request = urllib.request.Request(writer + "/v1/jobs", data=json.dumps(job).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 201, r.status
        answered[job["id"]] = time.monotonic()
        if i == 0:
            deadline = time.monotonic() + 30
            while "lat-0" not in arrived and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while len(arrived) < count + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    lat = sorted((arrived[j] - t) * 1000 for j, t in answered.items() if j in arrived and j != "lat-0")
    missing = count - len(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"events: {len(lat)} of {count} arrived on the other instance ({missing} missing)")
    print(f"201 answered -> event on the other instance's stream, ms: p50 {statistics.median(lat):.1f}  "
          f"p90 {q(0.90):.1f}  p99 {q(0.99):.1f}  max {lat[-1]:.1f}")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
