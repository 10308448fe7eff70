"""A shot's render overrides (`render`), its frame list (`frames`), chunking and the
files it was submitted without (`missing`): the parts of a shot spec that say how the
file is rendered. Absent means the file's own setting."""
from __future__ import annotations

import math
from typing import Any

from brender_protocol import shot as shot_rules
from brender_protocol.formats import (COLOR_DEPTHS, COLOR_MODES, EXR_CODECS, EXR_FORMATS,
                                      FORMAT_DEPTHS, NO_ALPHA, OUTPUT_FORMATS)

from . import validation
from .chunking import MAX_FRAMES, frame_numbers
from .validation import ValidationError

NAME_KEYS = shot_rules.NAME_KEYS
RENDER_KEYS = shot_rules.RENDER_KEYS
LEGACY_KEYS = shot_rules.LEGACY_KEYS
MAX_NAME = shot_rules.MAX_RENDER_NAME
MAX_MISSING = shot_rules.MAX_MISSING


def output_format(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in OUTPUT_FORMATS:
        raise ValidationError(field, f"must be one of {', '.join(OUTPUT_FORMATS)}")
    return value.upper()


def render_overrides(body: dict) -> dict:
    """The `render` object, checked, with the old top-level keys folded in; only the
    keys that are set (not null) are kept."""
    raw = body.get("render")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError("render", "must be an object")
    for key in raw:
        if key not in RENDER_KEYS:
            raise ValidationError(f"render.{str(key)[:40]}", "is not a render setting")
    given = {k: v for k, v in raw.items() if v is not None}
    for key in LEGACY_KEYS:
        if body.get(key) is None:
            continue
        if key in given and not _same(given[key], body[key]):
            raise ValidationError(key, f"differs from render.{key}: give one of them")
        given.setdefault(key, body[key])
    try:
        return _checked(given)
    except ValidationError as exc:
        field = exc.field if exc.field in LEGACY_KEYS and exc.field not in raw \
            else f"render.{exc.field}"
        raise ValidationError(field, exc.message) from None


def _same(a: Any, b: Any) -> bool:
    return str(a).upper() == str(b).upper()


def _checked(given: dict) -> dict:
    out: dict[str, Any] = {}
    for key in NAME_KEYS:
        if key in given:
            out[key] = _name(given, key)
    if "view_layers" in given:
        layers = given["view_layers"]
        if not isinstance(layers, list) or not layers \
                or len(layers) > shot_rules.MAX_VIEW_LAYERS:
            raise ValidationError("view_layers", "must be a non-empty list of view layer names")
        names = [_name({"view_layers": v}, "view_layers") for v in layers]
        if len(set(names)) != len(names):
            raise ValidationError("view_layers", "lists a view layer twice")
        out["view_layers"] = names
    fmt = output_format(given["output_format"], "output_format") \
        if "output_format" in given else None
    if fmt:
        out["output_format"] = fmt
    if "color_depth" in given:
        depth = given["color_depth"]
        depth = str(depth) if isinstance(depth, (str, int)) and not isinstance(depth, bool) \
            else ""
        if depth not in COLOR_DEPTHS:
            raise ValidationError("color_depth", 'must be "8", "16" or "32"')
        if fmt and depth not in FORMAT_DEPTHS.get(fmt, ("8",)):
            raise ValidationError("color_depth", f"{fmt} has no {depth}-bit colour")
        out["color_depth"] = depth
    if "color_mode" in given:
        mode = given["color_mode"]
        if mode not in COLOR_MODES:
            raise ValidationError("color_mode", f"must be one of {', '.join(COLOR_MODES)}")
        if mode == "RGBA" and fmt in NO_ALPHA:
            raise ValidationError("color_mode", f"{fmt} has no alpha channel")
        out["color_mode"] = mode
    if "exr_codec" in given:
        codec = given["exr_codec"]
        if codec not in EXR_CODECS:
            raise ValidationError("exr_codec", f"must be one of {', '.join(EXR_CODECS)}")
        if fmt and fmt not in EXR_FORMATS:
            raise ValidationError("exr_codec", f"applies to OpenEXR output, not {fmt}")
        out["exr_codec"] = codec
    if "exposure" in given:
        exposure = given["exposure"]
        if isinstance(exposure, bool) or not isinstance(exposure, (int, float)) \
                or not math.isfinite(exposure) \
                or not shot_rules.EXPOSURE[0] <= exposure <= shot_rules.EXPOSURE[1]:
            raise ValidationError("exposure", "must be a number between {} and {}".format(
                *shot_rules.EXPOSURE))
        out["exposure"] = float(exposure)
    if "film_transparent" in given:
        if not isinstance(given["film_transparent"], bool):
            raise ValidationError("film_transparent", "must be true or false")
        out["film_transparent"] = given["film_transparent"]
    for key in ("resolution_x", "resolution_y"):
        if key in given:
            out[key] = validation._int(given, key, None, *shot_rules.RESOLUTION)
    if "samples" in given:
        out["samples"] = validation._int(given, "samples", None, *shot_rules.SAMPLES)
    if "resolution_percentage" in given:
        out["resolution_percentage"] = validation._int(given, "resolution_percentage", None,
                                                       *shot_rules.RESOLUTION_PERCENTAGE)
    return out


def _name(body: dict, key: str) -> str:
    value = validation._str(body, key, None, MAX_NAME)
    if not value.strip():
        raise ValidationError(key, "must not be empty")
    return value


def frame_list(body: dict) -> tuple[list[int], str | None]:
    """The shot's frames, sorted: from `frames` ("1-10,20,30-40", `frame_step` inside
    each range) when given, else frame_start..frame_end by frame_step. Returns the
    frames and the `frames` text as given (None for a plain range)."""
    step = validation._int(body, "frame_step", 1, 1, validation.FRAME_LIMIT)
    text = body.get("frames")
    if text is None:
        start = validation._int(body, "frame_start")
        end = validation._int(body, "frame_end")
        if end < start:
            raise ValidationError("frame_end", "must not be before frame_start")
        if (end - start) // step + 1 > MAX_FRAMES:
            raise ValidationError("frame_end", f"a shot has at most {MAX_FRAMES} frames")
        return frame_numbers(start, end, step), None
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("frames", 'must be a list of frames such as "1-10,20,30-40"')
    if len(text) > shot_rules.MAX_FRAMES_TEXT:
        raise ValidationError("frames", f"is longer than {shot_rules.MAX_FRAMES_TEXT} characters")
    try:
        items = shot_rules.frame_items(text)
    except shot_rules.BadFrameItem as exc:
        if exc.reversed:
            raise ValidationError("frames", f"{exc.item!r} ends before it starts") from None
        raise ValidationError("frames", f"{exc.item[:40]!r} is not N or A-B") from None
    ranges, listed = [], 0
    for first, last in items:
        listed += (last - first) // step + 1
        # Overlaps are allowed, but not a list that names millions of frames.
        if listed > validation.FRAME_LIMIT:
            raise ValidationError("frames", f"names more than {validation.FRAME_LIMIT} frames")
        ranges.append(range(first, last + 1, step))
    frames: set[int] = set()
    for r in ranges:
        frames.update(r)
    if len(frames) > MAX_FRAMES:
        raise ValidationError("frames", f"a shot has at most {MAX_FRAMES} frames")
    return sorted(frames), text.strip()


def chunking(body: dict) -> tuple[int | None, str]:
    """(chunk_size, mode): an integer is honoured exactly ("fixed"); absent or "auto"
    lets the farm size jobs by measured frame times ("auto")."""
    size = body.get("chunk_size")
    if size is None or size == "auto":
        return None, "auto"
    return validation._int(body, "chunk_size", None, 1, shot_rules.MAX_CHUNK), "fixed"


def missing_files(body: dict) -> list[dict]:
    """Files the submitter knew were missing: [{path, used_by}]."""
    raw = body.get("missing")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_MISSING:
        raise ValidationError("missing", f"must be a list of at most {MAX_MISSING} "
                                         "{path, used_by} objects")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ValidationError(f"missing[{i}]", "must be an object {path, used_by}")
        for key in entry:
            if key not in ("path", "used_by"):
                raise ValidationError(f"missing[{i}].{str(key)[:40]}", "is not a known key")
        try:
            path = validation._str(entry, "path", None, validation.MAX_PATH)
            used_by = validation._str(entry, "used_by", "", MAX_NAME)
        except ValidationError as exc:
            raise ValidationError(f"missing[{i}].{exc.field}", exc.message) from None
        if not path.strip():
            raise ValidationError(f"missing[{i}].path", "must not be empty")
        out.append({"path": path, "used_by": used_by})
    return out
