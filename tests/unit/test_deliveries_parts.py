"""The small rules behind issue 17's routes: ffmpeg's frame rate of a shot's fps, and
the `?frames=` list of a zip download (merged, checked, naming the field)."""
from __future__ import annotations

import pytest

from coordinator.movie_encoding import frame_rate
from coordinator.routes.downloads import frame_ranges
from coordinator.validation import ValidationError


@pytest.mark.parametrize("fps, rate", [(24, "24/1"), (24 / 1.001, "24000/1001"), (30 / 1.001, "30000/1001"), (23.976, "2997/125"),
                                       (12.5, "25/2"), (0.5, "1/2")])
def test_frame_rate_is_exact(fps, rate):
    assert frame_rate(fps) == rate


def test_frame_ranges_are_sorted_and_merged():
    assert frame_ranges("20, 1-10, 5-12,13") == [(1, 13), (20, 20)]
    assert frame_ranges("-5--1") == [(-5, -1)]
    assert frame_ranges(None)[0][0] < -10**5


@pytest.mark.parametrize("text", ["", " ", "abc", "5-1", "1-", "1,,2", "1" * 9, "x" * 200_000])
def test_bad_frame_lists_name_the_field(text):
    with pytest.raises(ValidationError) as err:
        frame_ranges(text)
    assert err.value.field == "frames"
