#!/usr/bin/env python3
"""APScheduler 3.x as Cronhook's peer in `cronhook-bench`.

Runs one scenario with APScheduler's SQLAlchemy job store on PostgreSQL,
ThreadPoolExecutor(50), misfire_grace_time=None, coalesce=False and
max_instances=1. Every run POSTs to the benchmark's receiver with a
kept-alive session, saying which job and which scheduled time it is for,
as Cronhook's webhooks do. Prints {"t0": <unix seconds>} once the jobs are
stored, then runs until SIGTERM.
"""

import argparse
import collections
import datetime as dt
import json
import math
import signal
import sys
import threading
import time

import requests
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

UTC = dt.timezone.utc
PENDING = collections.defaultdict(collections.deque)
LOCK = threading.Lock()
LOCAL = threading.local()
URL = ""


def session():
    s = getattr(LOCAL, "session", None)
    if s is None:
        s = LOCAL.session = requests.Session()
    return s


def fire(job_id):
    with LOCK:
        scheduled = PENDING[job_id].popleft()
    session().post(
        URL,
        data=b"{}",
        headers={
            "content-type": "application/json",
            "cronhook-job-id": job_id,
            "cronhook-scheduled-for": scheduled.astimezone(UTC).isoformat(),
        },
        timeout=30,
    )


class StampingExecutor(ThreadPoolExecutor):
    """Hands each run its scheduled time: APScheduler does not pass it to
    the job function. Only runs the executor accepts get here."""

    def _do_submit_job(self, job, run_times):
        with LOCK:
            PENDING[job.id].extend(run_times)
        return super()._do_submit_job(job, run_times)


def main():
    global URL
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["burst", "steady", "aligned"])
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--db", required=True, help="postgres:// URL of an empty database")
    p.add_argument("--url", required=True, help="the receiver's URL")
    p.add_argument("--lead", type=float, default=5.0, help="seconds to store the jobs in")
    args = p.parse_args()
    URL = args.url

    db = args.db.replace("postgres://", "postgresql+psycopg2://", 1)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=db)},
        executors={"default": StampingExecutor(50)},
        job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        timezone=UTC,
    )
    scheduler.start(paused=True)
    t0 = math.ceil(time.time() + args.lead)
    start = dt.datetime.fromtimestamp(t0, UTC)
    for i in range(args.jobs):
        if args.scenario == "burst":
            job_id, trigger = f"burst-{i:06d}", DateTrigger(run_date=start)
        elif args.scenario == "steady":
            offset = dt.timedelta(microseconds=(i * 1_000_000) // args.jobs)
            job_id, trigger = f"steady-{i:05d}", IntervalTrigger(seconds=1, start_date=start + offset)
        else:
            job_id, trigger = f"aligned-{i:05d}", CronTrigger(second="*", start_date=start)
        scheduler.add_job(fire, trigger, args=[job_id], id=job_id, replace_existing=True)
    if time.time() >= t0:
        print(json.dumps({"error": f"storing {args.jobs} jobs took longer than --lead {args.lead}"}), flush=True)
        sys.exit(2)
    scheduler.resume()
    print(json.dumps({"t0": t0}), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    scheduler.shutdown(wait=False)


if __name__ == "__main__":
    main()
