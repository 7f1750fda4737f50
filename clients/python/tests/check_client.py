"""The client against a running Cronhook (CRONHOOK_URL), as a user of
APScheduler would use it; run by tests/it/python_client.rs on both stores.
Exits non-zero on the first assertion that fails."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cronhook import (
    ConflictingIdError,
    CronTrigger,
    Cronhook,
    CronhookError,
    DateTrigger,
    IntervalTrigger,
    WebhookVerificationError,
    verify,
)

# APScheduler's CronTrigger fields as cron: finer fields than the finest
# given start at their minimum, coarser ones are `*`.
for trigger, expr in [
    (CronTrigger(hour="*/4"), "0 */4 * * *"),
    (CronTrigger(day_of_week="mon-fri", hour=9, minute=30), "30 9 * * mon-fri"),
    (CronTrigger(month=6), "0 0 1 6 *"),
    (CronTrigger(minute="*/15"), "*/15 * * * *"),
    (CronTrigger(second=30), "30 * * * * *"),
    (CronTrigger(), "* * * * * *"),
]:
    assert trigger.to_api()["expr"] == expr, (trigger, trigger.to_api())
for refused in [CronTrigger(day_of_week=0), CronTrigger(day=1, day_of_week="mon"), CronTrigger(week=2)]:
    try:
        refused.to_api()
        raise AssertionError(f"{refused} was taken")
    except ValueError:
        pass
assert IntervalTrigger(hours=2).to_api() == {"type": "interval", "every_s": 7200}

received = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
hook = f"http://127.0.0.1:{server.server_address[1]}/report"

scheduler = Cronhook(os.environ["CRONHOOK_URL"])

# APScheduler's classic job, ported in one call.
job = scheduler.add_job(
    hook,
    CronTrigger(hour="*/4"),
    id="report",
    max_instances=1,
    replace_existing=True,
    coalesce=True,
    misfire_grace_time=900,
    next_run_time="now",
    body={"report": "daily"},
)
assert job["trigger"]["expr"] == "0 */4 * * *", job
assert (job["max_instances"], job["coalesce"], job["misfire_grace_s"]) == (1, True, 900), job

# Its first run (next_run_time="now") is seen by the event iterator.
for event in scheduler.events(types=["run.succeeded", "run.failed"], job_id="report"):
    assert event.type == "run.succeeded", event
    assert event.job_id == "report" and event.run_id, event
    first_event = event
    break
run = scheduler.get_run(first_event.run_id)
assert run["status"] == "succeeded" and run["attempts"][0]["status_code"] == 204, run

# The request it sent verifies with the job's secret; a changed body does not.
headers, body = received[0]
assert json.loads(body) == {"report": "daily"}, body
verify(headers, body, scheduler.secret("report"))
try:
    verify(headers, body + b" ", scheduler.secret("report"))
    raise AssertionError("a changed body verified")
except WebhookVerificationError:
    pass

# The event stream resumes after the last event it gave: no repeat.
created = scheduler.add_job(hook, DateTrigger("2099-01-01T00:00:00Z"), id="later")
assert created["trigger"]["run_at"].startswith("2099-01-01"), created
after_first = next(iter(scheduler.events(last_event_id=first_event.id, types=["job.created"])))
assert (after_first.type, after_first.job_id) == ("job.created", "later"), after_first

# replace_existing again changes nothing; without it the id is taken.
again = scheduler.add_job(
    hook, CronTrigger(hour="*/4"), id="report", max_instances=1, replace_existing=True,
    coalesce=True, misfire_grace_time=900, body={"report": "daily"},
)
assert again["created_at"] == job["created_at"], again
try:
    scheduler.add_job(hook, CronTrigger(hour="*/4"), id="report")
    raise AssertionError("a second job with the same id was made")
except ConflictingIdError as e:
    assert e.status == 409, e

# A refusal names its field.
try:
    scheduler.add_job(hook, CronTrigger(hour="25"), id="bad")
    raise AssertionError("hour 25 was taken")
except CronhookError as e:
    assert e.status == 422 and e.detail.startswith("trigger.expr"), e.detail

# The rest of the APScheduler verbs.
every = scheduler.add_job(hook, IntervalTrigger(hours=2), id="every", paused=True)
assert every["trigger"]["every_s"] == 7200 and every["state"] == "paused", every
assert scheduler.resume_job("every")["state"] == "scheduled"
assert scheduler.pause_job("every")["state"] == "paused"
assert scheduler.modify_job("every", name="Every two hours")["name"] == "Every two hours"
run = scheduler.run_job("every")
assert run["cause"] == "manual", run
ids = sorted(j["id"] for j in scheduler.get_jobs())
assert ids == ["every", "later", "report"], ids
assert scheduler.runs("report")[0]["status"] == "succeeded"
scheduler.remove_job("later")
assert scheduler.get_job("later") is None
print("python client: ok")
