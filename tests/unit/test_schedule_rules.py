"""Availability schedules: windows in the node's local time, across midnight and the
week's end; the next boundary; the farm's loop putting nodes to sleep and waking them."""
from __future__ import annotations

import datetime as dt

import pytest

from brender_protocol.errors import FieldError
from brender_protocol.schedule import is_awake, next_change, parse_schedule
from coordinator.availability import Availability

NIGHTS = parse_schedule({"mode": "weekly", "on_sleep": "handback", "windows": [
    {"days": ["weekdays"], "start": "19:00", "end": "08:00"},
    {"days": ["sat", "sunday"], "start": "00:00", "end": "00:00"}]})
HOUR = 3600


def utc(day: int, hour: int, minute: int = 0) -> float:
    """December 2026: the 7th is a Monday."""
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=dt.timezone.utc).timestamp()


def test_a_schedule_is_normalised():
    assert NIGHTS["windows"][0]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert NIGHTS["windows"][1]["days"] == ["sat", "sun"]
    assert parse_schedule(None) == {"mode": "always", "windows": [], "on_sleep": "finish"}
    assert parse_schedule({"mode": "never"})["windows"] == []


@pytest.mark.parametrize("when, awake", [
    (utc(7, 12), False), (utc(7, 18, 59), False), (utc(7, 19), True), (utc(8, 7, 59), True),
    (utc(8, 8), False), (utc(11, 23), True), (utc(12, 12), True), (utc(13, 23, 59), True),
    (utc(14, 0), False),    # Sunday's whole day ends at Monday 00:00
])
def test_windows_run_past_midnight_and_the_weeks_end(when, awake):
    assert is_awake(NIGHTS, when, 0) is awake


def test_the_nodes_local_time_decides():
    # 12:00 UTC is 20:00 in UTC+8 and 07:00 in UTC-5.
    assert is_awake(NIGHTS, utc(8, 12), 8 * HOUR)
    assert is_awake(NIGHTS, utc(8, 12), -5 * HOUR)
    assert not is_awake(NIGHTS, utc(8, 12), 0)


def test_the_next_boundary():
    assert next_change(NIGHTS, utc(7, 12), 0) == utc(7, 19)
    assert next_change(NIGHTS, utc(7, 20), 0) == utc(8, 8)
    # Friday night runs into the weekend: the next change is Monday 00:00.
    assert next_change(NIGHTS, utc(11, 20), 0) == utc(14, 0)
    # Monday 12:00 UTC is 20:00 in UTC+8: awake until 08:00 there, 00:00 UTC.
    assert next_change(NIGHTS, utc(7, 12), 8 * HOUR) == utc(8, 0)
    assert next_change({"mode": "always", "windows": []}, utc(7, 12), 0) is None


@pytest.mark.parametrize("raw, field", [
    ({"mode": "sometimes"}, "schedule.mode"),
    ({"mode": "weekly"}, "schedule.windows"),
    ({"mode": "weekly", "windows": [{"days": ["mon"], "start": "7pm", "end": "08:00"}]},
     "schedule.windows[0].start"),
    ({"mode": "weekly", "windows": [{"days": ["funday"], "start": "19:00", "end": "08:00"}]},
     "schedule.windows[0].days"),
    ({"mode": "weekly", "windows": [{"days": [], "start": "19:00", "end": "08:00"}]},
     "schedule.windows[0].days"),
    ({"mode": "weekly", "windows": [{"days": ["mon"], "start": "19:00", "end": "24:01"}]},
     "schedule.windows[0].end"),
    ({"on_sleep": "explode"}, "schedule.on_sleep"), ({"colour": 1}, "schedule.colour"),
    ("always", "schedule"),
])
def test_bad_schedules_name_the_field(raw, field):
    with pytest.raises(FieldError) as err:
        parse_schedule(raw)
    assert err.value.field == field


class FakeSession:
    def __init__(self, schedule, offset=0):
        self.node = {"name": "n", "schedule": schedule, "utc_offset": offset}
        self.asleep = False

    def set_asleep(self, asleep):
        self.asleep = asleep


async def test_the_farm_hears_each_node_fall_asleep_and_wake_once():
    session = FakeSession(NIGHTS)
    slept, woke = [], []

    async def on_asleep(s):
        slept.append(s)

    avail = Availability([session], on_asleep, lambda: woke.append(1))
    assert await avail.check(utc(7, 18, 59)) == 60      # wakes for the 19:00 boundary
    assert await avail.check(utc(7, 18)) == 60            # at most a minute
    assert session.asleep and slept == [session] and woke == []
    await avail.check(utc(7, 18, 30))
    assert slept == [session]                      # told once
    await avail.check(utc(7, 19))
    assert not session.asleep and woke == [1]
    session.node["schedule"] = parse_schedule({"mode": "never"})
    await avail.check(utc(7, 19, 1))
    assert session.asleep and len(slept) == 2
