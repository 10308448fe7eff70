"""When a node may render: always, never, or weekly windows in the node's local time.

A window that starts on a listed day at `start` lasts until `end`; an `end` at or
before `start` runs past midnight into the next day (19:00-08:00). The coordinator
checks schedules with these rules; the dashboard states them as the API does.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import FieldError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_NAMES = dict(zip(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                       "sunday"), DAYS))
SHORTHANDS = {"weekdays": DAYS[:5], "weekend": DAYS[5:], "daily": DAYS}
MODES = ("always", "never", "weekly")
ON_SLEEP = ("finish", "handback")
MAX_WINDOWS = 50
TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
DEFAULT = {"mode": "always", "windows": [], "on_sleep": "finish"}
WEEK = 7 * 86400


def _minutes(raw: Any, field: str) -> int:
    match = TIME.match(raw) if isinstance(raw, str) else None
    if not match:
        raise FieldError(field, 'must be a time "HH:MM" (00:00..23:59, or 24:00 as an end)')
    return 24 * 60 if raw == "24:00" else int(match[1]) * 60 + int(match[2])


def _window(raw: Any, field: str) -> dict:
    if not isinstance(raw, dict):
        raise FieldError(field, "must be an object {days, start, end}")
    for key in raw:
        if key not in ("days", "start", "end"):
            raise FieldError(f"{field}.{str(key)[:40]}", "is not a window key")
    days = raw.get("days")
    if isinstance(days, str):
        days = [days]
    if not isinstance(days, list) or not days:
        raise FieldError(f"{field}.days", "must be a non-empty list of mon..sun")
    picked: set[str] = set()
    for day in days:
        name = day.lower() if isinstance(day, str) else ""
        if name in SHORTHANDS:
            picked.update(SHORTHANDS[name])
        elif name in DAYS or name in FULL_NAMES:
            picked.add(FULL_NAMES.get(name, name))
        else:
            raise FieldError(f"{field}.days", f"{str(day)[:20]!r} is not a day (mon..sun, "
                                              "weekdays, weekend, daily)")
    start = _minutes(raw.get("start"), f"{field}.start")
    end = _minutes(raw.get("end"), f"{field}.end")
    if start == 24 * 60:
        raise FieldError(f"{field}.start", "must be before 24:00")
    return {"days": [d for d in DAYS if d in picked], "start": raw["start"], "end": raw["end"]}


def parse_schedule(raw: Any, field: str = "schedule") -> dict:
    """A schedule, checked and normalised (null: always)."""
    if raw is None:
        return dict(DEFAULT, windows=[])
    if not isinstance(raw, dict):
        raise FieldError(field, "must be an object {mode, windows, on_sleep}")
    for key in raw:
        if key not in ("mode", "windows", "on_sleep"):
            raise FieldError(f"{field}.{str(key)[:40]}", "is not a schedule key")
    mode = raw.get("mode", "always")
    if mode not in MODES:
        raise FieldError(f"{field}.mode", f"must be one of {', '.join(MODES)}")
    on_sleep = raw.get("on_sleep", "finish")
    if on_sleep not in ON_SLEEP:
        raise FieldError(f"{field}.on_sleep", f"must be one of {', '.join(ON_SLEEP)}")
    windows = raw.get("windows") or []
    if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
        raise FieldError(f"{field}.windows", f"must be a list of at most {MAX_WINDOWS} windows")
    clean = [_window(w, f"{field}.windows[{i}]") for i, w in enumerate(windows)]
    if mode == "weekly" and not clean:
        raise FieldError(f"{field}.windows", "a weekly schedule needs at least one window")
    return {"mode": mode, "windows": clean if mode == "weekly" else [], "on_sleep": on_sleep}


def _spans(schedule: dict) -> list[tuple[int, int]]:
    """The weekly windows as [start, end) seconds from Monday 00:00, end > start
    (may pass the week's end)."""
    spans = []
    for w in schedule.get("windows", []):
        start, end = _minutes(w["start"], "start") * 60, _minutes(w["end"], "end") * 60
        length = end - start if end > start else end - start + 86400
        for day in w["days"]:
            begin = DAYS.index(day) * 86400 + start
            spans.append((begin, begin + length))
    return spans


def _week_second(now_utc: float, utc_offset: int) -> float:
    # 1970-01-01 was a Thursday: shift by three days so that 0 is a Monday 00:00.
    return (now_utc + utc_offset + 3 * 86400) % WEEK


def is_awake(schedule: dict | None, now_utc: float, utc_offset: int = 0) -> bool:
    schedule = schedule or DEFAULT
    if schedule["mode"] != "weekly":
        return schedule["mode"] == "always"
    t = _week_second(now_utc, utc_offset)
    return any(a <= t < b or a <= t + WEEK < b for a, b in _spans(schedule))


def next_change(schedule: dict | None, now_utc: float, utc_offset: int = 0) -> float | None:
    """When `is_awake` next changes (epoch seconds), or None if it never does."""
    schedule = schedule or DEFAULT
    if schedule["mode"] != "weekly":
        return None
    t = _week_second(now_utc, utc_offset)
    awake = is_awake(schedule, now_utc, utc_offset)
    edges = sorted({e % WEEK for span in _spans(schedule) for e in span})
    for step in sorted(((e - t) % WEEK) or WEEK for e in edges):
        moment = now_utc + step
        if is_awake(schedule, moment, utc_offset) != awake:
            return moment
    return None
