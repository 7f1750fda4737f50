"""Cronhook's Python client: schedule webhooks with APScheduler's words.

    from cronhook import Cronhook, CronTrigger

    scheduler = Cronhook("http://127.0.0.1:8080")
    scheduler.add_job("https://example.com/hooks/report", CronTrigger(hour="*/4"),
                      id="report", max_instances=1, replace_existing=True,
                      coalesce=True, misfire_grace_time=900, next_run_time="now")
"""

from .client import ConflictingIdError, Cronhook, CronhookError, Event, JobLookupError
from .triggers import CronTrigger, DateTrigger, IntervalTrigger
from .webhooks import WebhookVerificationError, verify

__all__ = [
    "ConflictingIdError",
    "CronTrigger",
    "Cronhook",
    "CronhookError",
    "DateTrigger",
    "Event",
    "IntervalTrigger",
    "JobLookupError",
    "WebhookVerificationError",
    "verify",
]
