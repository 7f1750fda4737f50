"""A client generated from openapi/openapi.json, used as a user would.

Run by tests/contract.rs against a started service:

    python client_check.py BASE_URL

Every call goes through the generated client, which parses each answer
into the document's models: a field the document describes wrongly fails
here. It exits non-zero, saying which call, at the first surprise.
"""

import datetime
import sys
import time
import uuid

from cronhook_client import AuthenticatedClient, Client
from cronhook_client.api.jobs import (
    create_job,
    delete_job,
    get_job,
    list_jobs,
    modify_job,
    replace_job,
)
from cronhook_client.api.runs import get_run, list_all_runs, list_runs, run_now
from cronhook_client.api.tokens import create_token, list_tokens
from cronhook_client.api.triggers import preview
from cronhook_client.models import (
    CronTrigger,
    CronTriggerType,
    DateTrigger,
    DateTriggerType,
    HttpMethod,
    IntervalTrigger,
    IntervalTriggerType,
    Job,
    JobPage,
    JobPatch,
    JobRequest,
    PreviewRequest,
    Problem,
    Run,
    RunDetail,
    RunPage,
    RunStatus,
    Role,
    Target,
    TokenInput,
    TokenList,
    CreatedToken,
)
from cronhook_client.types import UNSET


def expect(response, status, model, what):
    if response.status_code != status:
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
    if model is not None and not isinstance(response.parsed, model):
        sys.exit(f"{what}: did not parse as {model.__name__}: {response.parsed!r}")
    return response.parsed


def main(base):
    anonymous = Client(base_url=base, raise_on_unexpected_status=True, timeout=30)
    # Open on loopback until the first token: a root one, made over the API.
    made_token = expect(
        create_token.sync_detailed(client=anonymous, body=TokenInput(role=Role.ROOT, name="client check")),
        201, CreatedToken, "create the first token")
    if not made_token.token.startswith("chk_") or made_token.role != Role.ROOT:
        sys.exit(f"the token came back as {made_token!r}")
    refused = expect(list_jobs.sync_detailed(client=anonymous), 401, Problem, "list without a token")
    if "token" not in refused.detail:
        sys.exit(f"401 detail: {refused.detail}")
    client = AuthenticatedClient(base_url=base, token=made_token.token,
                                 raise_on_unexpected_status=True, timeout=30)
    tokens = expect(list_tokens.sync_detailed(client=client), 200, TokenList, "list tokens")
    if [t.id for t in tokens.items] != [made_token.id]:
        sys.exit(f"tokens listed: {tokens.items!r}")
    suffix = uuid.uuid4().hex[:8]
    # The service's own health check is a target that answers 200 to GET.
    hook = Target(url=f"{base}/healthz", method=HttpMethod.GET)

    cron = JobRequest(
        id=f"cron-{suffix}",
        trigger=CronTrigger(type_=CronTriggerType.CRON, expr="30 2 * * *", timezone="Asia/Seoul"),
        target=Target(url="https://hooks:pw@example.com/hook"),
    )
    cron.target.headers = {"Authorization": "Bearer abc", "X-Team": "data"}
    interval = JobRequest(
        id=f"interval-{suffix}",
        trigger=IntervalTrigger(type_=IntervalTriggerType.INTERVAL, every_s=3600),
        target=Target(url=hook.url, method=HttpMethod.GET),
    )
    interval.target.body = {"report": ["daily", 1]}
    date = JobRequest(
        id=f"date-{suffix}",
        trigger=DateTrigger(type_=DateTriggerType.DATE,
                            run_at=datetime.datetime(2099, 12, 1, 9, tzinfo=datetime.timezone.utc)),
        target=Target(url="https://example.com/text"),
        name="a string body",
    )
    date.target.body = "plain text"

    made = {}
    for request in (cron, interval, date):
        job = expect(create_job.sync_detailed(client=client, body=request), 201, Job, f"create {request.id}")
        made[request.id] = job
    if made[cron.id].target.body not in (None, UNSET):
        sys.exit(f"a job without a body came back with {made[cron.id].target.body!r}")
    if made[interval.id].target.body != {"report": ["daily", 1]}:
        sys.exit(f"the JSON body came back as {made[interval.id].target.body!r}")
    if made[date.id].target.body != "plain text":
        sys.exit(f"the string body came back as {made[date.id].target.body!r}")
    if not isinstance(made[cron.id].trigger, CronTrigger):
        sys.exit(f"a cron trigger came back as {made[cron.id].trigger!r}")
    shown = made[cron.id].target
    if (shown.url != "https://hooks:***@example.com/hook" or shown.sensitive_headers != ["authorization"]
            or shown.headers.to_dict() != {"x-team": "data"}):
        sys.exit(f"the target's secrets came back: {shown!r}")

    # Idempotency-Key through the client: the same job again.
    again = expect(
        create_job.sync_detailed(client=client, body=JobRequest(
            trigger=IntervalTrigger(type_=IntervalTriggerType.INTERVAL, every_s=60),
            target=Target(url="https://example.com/once")), idempotency_key=f"key-{suffix}"),
        201, Job, "create with a key")
    repeat = expect(
        create_job.sync_detailed(client=client, body=JobRequest(
            trigger=IntervalTrigger(type_=IntervalTriggerType.INTERVAL, every_s=60),
            target=Target(url="https://example.com/once")), idempotency_key=f"key-{suffix}"),
        201, Job, "create with the same key")
    if repeat.id != again.id:
        sys.exit("a repeated Idempotency-Key made a second job")

    page = expect(list_jobs.sync_detailed(client=client, limit=500), 200, JobPage, "list jobs")
    listed = {job.id for job in page.items}
    if not set(made) <= listed:
        sys.exit(f"list is missing {set(made) - listed}")

    paused = expect(
        modify_job.sync_detailed(id=cron.id, client=client, body=JobPatch(paused=True)),
        200, Job, "patch paused only")
    if paused.state.value != "paused" or paused.target.url != "https://hooks:***@example.com/hook":
        sys.exit(f"patching paused changed more: {paused!r}")

    replaced = expect(
        replace_job.sync_detailed(id=date.id, client=client, body=date), 200, Job, "replace unchanged")
    if replaced.created_at != made[date.id].created_at:
        sys.exit("replace lost created_at")

    run = expect(run_now.sync_detailed(id=interval.id, client=client), 201, Run, "run now")
    deadline = time.monotonic() + 60
    while True:
        detail = expect(get_run.sync_detailed(id=run.id, client=client), 200, RunDetail, "get run")
        if detail.status == RunStatus.SUCCEEDED and detail.attempts:
            break
        if time.monotonic() > deadline:
            sys.exit(f"the manual run did not succeed: {detail!r}")
        time.sleep(0.1)
    attempt = detail.attempts[0]
    if attempt.number != 1 or attempt.status_code != 200:
        sys.exit(f"unexpected attempt {attempt!r}")

    runs = expect(list_runs.sync_detailed(id=interval.id, client=client), 200, RunPage, "list runs")
    if [r.id for r in runs.items] != [run.id]:
        sys.exit(f"the job's runs are {runs.items!r}")
    succeeded = expect(
        list_all_runs.sync_detailed(client=client, status=[RunStatus.SUCCEEDED], job_id=interval.id),
        200, RunPage, "list runs across jobs")
    if [r.id for r in succeeded.items] != [run.id]:
        sys.exit(f"succeeded runs are {succeeded.items!r}")

    fires = expect(
        preview.sync_detailed(client=client, body=PreviewRequest(
            trigger=CronTrigger(type_=CronTriggerType.CRON, expr="0 12 * * *"), count=3)),
        200, None, "preview")
    if len(fires.fire_times) != 3:
        sys.exit(f"preview gave {fires!r}")

    for job_id in made:
        expect(delete_job.sync_detailed(id=job_id, client=client), 204, None, f"delete {job_id}")
    missing = expect(get_job.sync_detailed(id=cron.id, client=client), 404, Problem, "get a deleted job")
    if "no job" not in missing.detail:
        sys.exit(f"404 detail: {missing.detail}")
    invalid = expect(
        create_job.sync_detailed(client=client, body=JobRequest(
            trigger=CronTrigger(type_=CronTriggerType.CRON, expr="* * *"), target=Target(url="https://x.test"))),
        422, Problem, "an invalid job")
    if invalid.field != "trigger.expr":
        sys.exit(f"the 422 names {invalid.field!r}")
    print("the generated client parsed every answer")


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
