"""A shot's limits, its frames-list grammar and its render overrides' keys and values:
what `POST /api/shots` accepts. The coordinator enforces them; the add-on and
`brender-submit` check against the same values before sending."""
from __future__ import annotations

import re


FRAME_LIMIT = 1_000_000          # the largest frame number (either sign) and frame step
MAX_FRAMES = 100_000             # frames in one shot
MAX_CHUNK = MAX_FRAMES           # frames in one fixed-size job
PRIORITY = (0, 100)
DEFAULT_PRIORITY = 50
MAX_NAME = 200                   # a shot's name (and a node's)
MAX_SUBMITTED_BY = 100
MAX_FPS = 1000
MAX_FILES = 100_000
MAX_MISSING = 10_000
MAX_FRAMES_TEXT = 100_000        # characters of a `frames` list
# An item of a `frames` list: N or A-B, negative frames allowed, spaces around.
_ITEM = r"\s*(-?\d{1,7})\s*(?:-\s*(-?\d{1,7})\s*)?"
FRAME_ITEM = re.compile(f"^{_ITEM}$")
# A whole `frames` list, as a pattern (the OpenAPI document states it so).
_PLAIN_ITEM = _ITEM.replace("(-?", "(?:-?")
FRAMES_PATTERN = f"^{_PLAIN_ITEM}(?:,{_PLAIN_ITEM})*$"

# The `render` object's keys: these name data-blocks or colour settings of the file.
NAME_KEYS = ("scene", "camera", "view_transform", "look")
RENDER_KEYS = NAME_KEYS + (
    "view_layers", "output_format", "color_depth", "color_mode", "exr_codec", "exposure",
    "film_transparent", "resolution_x", "resolution_y", "resolution_percentage", "samples")
# Top-level fields of old clients that mean the same as these keys inside `render`.
LEGACY_KEYS = ("output_format", "resolution_percentage")
MAX_RENDER_NAME = 255            # Blender's data-block names are shorter still
MAX_VIEW_LAYERS = 1000
RESOLUTION = (4, 65536)          # resolution_x, resolution_y
RESOLUTION_PERCENTAGE = (1, 1000)
EXPOSURE = (-32, 32)
SAMPLES = (1, 1_000_000)         # Cycles samples, or Eevee's render samples
MAX_NODES = 100_000              # a shot's cap on nodes rendering it at once


class BadFrameItem(ValueError):
    """An item of a `frames` list that is not `N` or `A-B` (`reversed`: B < A)."""

    def __init__(self, item: str, reversed: bool = False):
        super().__init__(item)
        self.item = item
        self.reversed = reversed


def frame_items(text: str) -> list[tuple[int, int]]:
    """`"1-10, 20"` -> [(1, 10), (20, 20)], in the order given; BadFrameItem for the
    first item that is malformed or ends before it starts."""
    ranges = []
    for item in text.split(","):
        match = FRAME_ITEM.match(item)
        if not match:
            raise BadFrameItem(item.strip())
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise BadFrameItem(item.strip(), reversed=True)
        ranges.append((first, last))
    return ranges


def frame_count(first: int, last: int, step: int = 1) -> int:
    """Frames of first..last by step (0 when the range is empty)."""
    if step < 1 or last < first:
        return 0
    return (last - first) // step + 1
