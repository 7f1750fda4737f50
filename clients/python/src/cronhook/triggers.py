"""APScheduler-shaped triggers, written as Cronhook's trigger objects.

`CronTrigger(hour="*/4")` means what it means in APScheduler 3: fields
finer than the finest one given start at their minimum (minute 0, second
0), coarser ones are `*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Dict, Optional, Union

Field = Union[int, str, None]


def instant(value: Union[datetime, str]) -> str:
    """An RFC 3339 instant; a naive datetime is refused (whose zone?)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone: give an aware datetime")
    return value.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def _bounded(
    trigger: Dict[str, Any],
    start_date: Optional[Union[datetime, str]],
    end_date: Optional[Union[datetime, str]],
    jitter: Optional[int],
) -> Dict[str, Any]:
    """The trigger with APScheduler's start_date, end_date and jitter."""
    if start_date is not None:
        trigger["start_at"] = instant(start_date)
    if end_date is not None:
        trigger["end_at"] = instant(end_date)
    if jitter:
        trigger["jitter_s"] = int(jitter)
    return trigger


@dataclass
class CronTrigger:
    year: Field = None
    month: Field = None
    day: Field = None
    week: Field = None
    day_of_week: Field = None
    hour: Field = None
    minute: Field = None
    second: Field = None
    start_date: Optional[Union[datetime, str]] = None
    end_date: Optional[Union[datetime, str]] = None
    timezone: Optional[str] = None
    jitter: Optional[int] = None

    def to_api(self) -> Dict[str, Any]:
        if self.year not in (None, "*"):
            raise ValueError("year: Cronhook's cron has no year field")
        if self.week not in (None, "*"):
            raise ValueError("week: Cronhook's cron has no ISO week field")
        if self.day_of_week is not None and any(c.isdigit() for c in str(self.day_of_week)):
            # APScheduler counts from Monday = 0, cron from Sunday = 0.
            raise ValueError("day_of_week: give names (mon-fri), not APScheduler's numbers")
        if self.day not in (None, "*") and self.day_of_week not in (None, "*"):
            # APScheduler wants both to match; cron fires when either does.
            raise ValueError(
                "day and day_of_week together mean 'both' in APScheduler but 'either' "
                "in cron: give one (e.g. day_of_week='mon#1' for the first Monday)"
            )
        # From the finest field to the coarsest, in APScheduler's order
        # (day_of_week sits below day); each with the value it takes when
        # a coarser field is given and it is not.
        fields = [
            (self.second, "0"),
            (self.minute, "0"),
            (self.hour, "0"),
            (self.day_of_week, "*"),
            (self.day, "1"),
            (self.month, "1"),
        ]
        given = [i for i, (value, _) in enumerate(fields) if value is not None]
        # Nothing given: every field is `*` (every second), as in APScheduler.
        finest_given = given[0] if given else 0
        parts = [
            str(value) if value is not None else (minimum if i < finest_given else "*")
            for i, (value, minimum) in enumerate(fields)
        ]
        second, minute, hour, dow, day, month = parts
        if second == "0":
            expr = f"{minute} {hour} {day} {month} {dow}"
        else:
            expr = f"{second} {minute} {hour} {day} {month} {dow}"
        trigger: Dict[str, Any] = {"type": "cron", "expr": expr}
        if self.timezone:
            trigger["timezone"] = self.timezone
        return _bounded(trigger, self.start_date, self.end_date, self.jitter)


@dataclass
class IntervalTrigger:
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    start_date: Optional[Union[datetime, str]] = None
    end_date: Optional[Union[datetime, str]] = None
    jitter: Optional[int] = None

    def to_api(self) -> Dict[str, Any]:
        every = timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )
        if every.total_seconds() < 1 or every.total_seconds() % 1:
            raise ValueError("the interval must be a whole number of seconds, at least 1")
        trigger: Dict[str, Any] = {"type": "interval", "every_s": int(every.total_seconds())}
        return _bounded(trigger, self.start_date, self.end_date, self.jitter)


@dataclass
class DateTrigger:
    run_date: Union[datetime, str]

    def to_api(self) -> Dict[str, Any]:
        return {"type": "date", "run_at": instant(self.run_date)}


Trigger = Union[CronTrigger, IntervalTrigger, DateTrigger]
