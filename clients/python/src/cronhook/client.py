"""The Cronhook API over httpx, with APScheduler's `add_job` keywords."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import httpx

from .triggers import Trigger, instant

Json = Dict[str, Any]


class CronhookError(Exception):
    """A refusal: the status, and the problem's `detail` (which names the
    field and why)."""

    def __init__(self, status: int, detail: str, problem: Optional[Json] = None):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class ConflictingIdError(CronhookError):
    """A job with this id exists (add_job without replace_existing)."""


class JobLookupError(CronhookError):
    """No job has this id."""


@dataclass
class Event:
    id: str
    type: str
    job_id: str
    run_id: Optional[str]
    at: str
    data: Json


class Cronhook:
    """A client for one Cronhook service.

    >>> scheduler = Cronhook("http://127.0.0.1:8080", token="chk_…")
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        transport: Optional[httpx.BaseTransport] = None,
    ):
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Cronhook":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
                detail = problem.get("detail") or problem.get("title") or response.text
            except ValueError:
                problem, detail = {}, response.text
            kind = {409: ConflictingIdError, 404: JobLookupError}.get(
                response.status_code, CronhookError
            )
            raise kind(response.status_code, detail, problem)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # Jobs, the APScheduler way.

    def add_job(
        self,
        url: Optional[str] = None,
        trigger: Optional[Trigger] = None,
        *,
        id: Optional[str] = None,
        name: Optional[str] = None,
        method: str = "POST",
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        misfire_grace_time: Optional[int] = None,
        coalesce: Optional[bool] = None,
        max_instances: Optional[int] = None,
        next_run_time: Union[datetime, str, None] = None,
        replace_existing: bool = False,
        secret: Optional[str] = None,
        **more: Any,
    ) -> Json:
        """Schedules a webhook as APScheduler's `add_job` schedules a call:
        the same keywords, one request. `replace_existing=True` is a `PUT`
        (an id is needed), else a `POST` (a job with the id is a
        ConflictingIdError). `next_run_time="now"` (or a datetime) adds a
        first run then. Any other field of the API's request goes in
        `more` (retry=…, overlap=…, metadata=…)."""
        if trigger is None:
            raise ValueError("trigger: give a CronTrigger, IntervalTrigger or DateTrigger")
        job: Json = {"trigger": trigger.to_api()}
        if url is not None:
            target: Json = {"url": url, "method": method}
            if body is not None:
                target["body"] = body
            if headers:
                target["headers"] = dict(headers)
            job["target"] = target
        for key, value in (
            ("id", id),
            ("name", name),
            ("misfire_grace_s", misfire_grace_time),
            ("coalesce", coalesce),
            ("max_instances", max_instances),
            ("secret", secret),
        ):
            if value is not None:
                job[key] = value
        if next_run_time is not None:
            job["next_run_at"] = (
                "now" if next_run_time == "now" else instant(next_run_time)  # type: ignore[arg-type]
            )
        job.update(more)
        if replace_existing:
            if not id:
                raise ValueError("replace_existing needs an id")
            return self._call("PUT", f"/v1/jobs/{id}", json=job)
        return self._call("POST", "/v1/jobs", json=job)

    def get_job(self, job_id: str) -> Optional[Json]:
        try:
            return self._call("GET", f"/v1/jobs/{job_id}")
        except JobLookupError:
            return None

    def get_jobs(self, *, state: Optional[str] = None) -> List[Json]:
        jobs: List[Json] = []
        params: Dict[str, Any] = {"limit": 500}
        if state:
            params["state"] = state
        while True:
            page = self._call("GET", "/v1/jobs", params=params)
            jobs.extend(page["items"])
            if not page.get("next_cursor"):
                return jobs
            params["cursor"] = page["next_cursor"]

    def modify_job(self, job_id: str, **changes: Any) -> Json:
        """A JSON Merge Patch of the job (`None` removes a field)."""
        return self._call("PATCH", f"/v1/jobs/{job_id}", json=changes)

    def pause_job(self, job_id: str) -> Json:
        return self._call("POST", f"/v1/jobs/{job_id}/pause")

    def resume_job(self, job_id: str) -> Json:
        return self._call("POST", f"/v1/jobs/{job_id}/resume")

    def run_job(self, job_id: str) -> Json:
        """Runs the job now, beside its schedule; answers the run."""
        return self._call("POST", f"/v1/jobs/{job_id}/run")

    def remove_job(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/jobs/{job_id}")

    def secret(self, job_id: str) -> str:
        return self._call("GET", f"/v1/jobs/{job_id}/secret")["secret"]

    def runs(self, job_id: str, *, status: Optional[str] = None, limit: int = 50) -> List[Json]:
        params: Dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._call("GET", f"/v1/jobs/{job_id}/runs", params=params)["items"]

    def get_run(self, run_id: str) -> Json:
        return self._call("GET", f"/v1/runs/{run_id}")

    # Events.

    def events(
        self,
        *,
        types: Sequence[str] = (),
        job_id: Optional[str] = None,
        after: Optional[str] = None,
        last_event_id: Optional[str] = None,
        reconnect: bool = True,
    ) -> Iterator[Event]:
        """The event stream (`/v1/events/stream`) as an iterator. When the
        connection drops it reconnects with `Last-Event-ID`, so no event is
        missed or seen twice; `after="now"` starts with events written from
        now on (APScheduler's listeners: EVENT_JOB_ERROR is `run.failed`)."""
        params: Dict[str, Any] = {}
        if types:
            params["type"] = ",".join(types)
        if job_id:
            params["job_id"] = job_id
        if after and not last_event_id:
            params["after"] = after
        last = last_event_id
        wait = 0.5
        while True:
            headers = {"accept": "text/event-stream"}
            if last:
                headers["last-event-id"] = last
                params.pop("after", None)
            try:
                with self._http.stream(
                    "GET", "/v1/events/stream", params=params, headers=headers, timeout=None
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._call_failed(response)
                    for event in _server_sent_events(response.iter_lines()):
                        last = event.id
                        wait = 0.5
                        yield event
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                if not reconnect:
                    raise
            if not reconnect:
                return
            # The service restarting or gone: again, less and less often.
            time.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, 30.0)

    def _call_failed(self, response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise CronhookError(response.status_code, detail)


def _server_sent_events(lines: Iterator[str]) -> Iterator[Event]:
    """Events of a text/event-stream body: `id:` and `data:` lines, a blank
    line ending each."""
    event_id: Optional[str] = None
    data: List[str] = []
    for line in lines:
        if line == "":
            if data:
                body = json.loads("\n".join(data))
                yield Event(
                    id=event_id or body.get("id", ""),
                    type=body.get("type", ""),
                    job_id=body.get("job_id", ""),
                    run_id=body.get("run_id"),
                    at=body.get("at", ""),
                    data=body.get("data", {}),
                )
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
