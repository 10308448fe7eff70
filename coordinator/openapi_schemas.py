"""The OpenAPI schemas of what clients send, made from brender_protocol's rules (the
coordinator enforces the same ones), so the document states the farm's real limits."""
from __future__ import annotations

from typing import Any

from brender_protocol import formats, messages, requirements, shot, text


def _int(low: int, high: int, **extra: Any) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high, **extra}


def render_overrides() -> dict:
    names = {key: {"type": "string", "maxLength": shot.MAX_RENDER_NAME}
             for key in shot.NAME_KEYS}
    properties: dict[str, dict] = {
        **names,
        "view_layers": {"type": "array", "minItems": 1, "maxItems": shot.MAX_VIEW_LAYERS,
                        "items": {"type": "string", "maxLength": shot.MAX_RENDER_NAME}},
        "output_format": {"enum": list(formats.OUTPUT_FORMATS)},
        "color_depth": {"enum": list(formats.COLOR_DEPTHS)},
        "color_mode": {"enum": list(formats.COLOR_MODES)},
        "exr_codec": {"enum": list(formats.EXR_CODECS)},
        "exposure": {"type": "number", "minimum": shot.EXPOSURE[0],
                     "maximum": shot.EXPOSURE[1]},
        "film_transparent": {"type": "boolean"},
        "resolution_x": _int(*shot.RESOLUTION),
        "resolution_y": _int(*shot.RESOLUTION),
        "resolution_percentage": _int(*shot.RESOLUTION_PERCENTAGE),
        "samples": _int(*shot.SAMPLES),
    }
    return {"type": "object", "additionalProperties": False,
            "properties": {key: properties[key] for key in shot.RENDER_KEYS}}


def shot_spec() -> dict:
    """`POST /api/shots`'s body. `x-max-frames`: the frames one shot may have."""
    frame = _int(-shot.FRAME_LIMIT, shot.FRAME_LIMIT)
    file = {"type": "object", "required": ["path", "sha256", "size"], "properties": {
        "path": {"type": "string", "minLength": 1, "maxLength": text.MAX_PATH},
        "sha256": {"type": "string", "pattern": text.SHA256.pattern},
        "size": {"type": "integer", "minimum": 0}}}
    missing = {"type": "object", "required": ["path"], "additionalProperties": False,
               "properties": {"path": {"type": "string", "maxLength": text.MAX_PATH},
                              "used_by": {"type": "string",
                                          "maxLength": shot.MAX_RENDER_NAME}}}
    legacy = render_overrides()["properties"]
    return {
        "type": "object", "required": ["name", "files"], "x-max-frames": shot.MAX_FRAMES,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": shot.MAX_NAME},
            "blend_path": {"type": "string", "maxLength": text.MAX_PATH},
            "files": {"type": "array", "minItems": 1, "maxItems": shot.MAX_FILES,
                      "items": file},
            "frame_start": frame,
            "frame_end": frame,
            "frame_step": _int(1, shot.FRAME_LIMIT, default=1),
            "frames": {"type": "string", "maxLength": shot.MAX_FRAMES_TEXT,
                       "pattern": shot.FRAMES_PATTERN},
            "chunk_size": {"oneOf": [_int(1, shot.MAX_CHUNK), {"const": "auto"}],
                           "default": "auto"},
            "priority": _int(*shot.PRIORITY, default=shot.DEFAULT_PRIORITY),
            "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": shot.MAX_FPS},
            "submitted_by": {"type": "string", "maxLength": shot.MAX_SUBMITTED_BY},
            "allow_scripts": {"type": "boolean", "default": False},
            "render": render_overrides(),
            "output_format": legacy["output_format"],
            "resolution_percentage": legacy["resolution_percentage"],
            "missing": {"type": "array", "maxItems": shot.MAX_MISSING, "items": missing},
            "requires_tags": tags(), "prefers_tags": tags(),
            "device": {"enum": [*requirements.DEVICE_CHOICES, None]},
            "blender": {"type": ["string", "null"], "maxLength": requirements.MAX_RANGE,
                        "examples": [">=4.2,<5", "4.2"]},
            "blender_saved_with": {"type": ["string", "null"], "examples": ["4.2"]},
            "max_nodes": {"oneOf": [_int(1, shot.MAX_NODES), {"type": "null"}]},
        }}


def tags() -> dict:
    return {"type": "array", "maxItems": messages.MAX_TAGS,
            "items": {"type": "string", "minLength": 1, "maxLength": messages.MAX_TAG}}


def shot_change() -> dict:
    return {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {"priority": _int(*shot.PRIORITY),
                           "max_nodes": {"oneOf": [_int(1, shot.MAX_NODES),
                                                   {"type": "null"}]}}}


def node_change() -> dict:
    window = {"type": "object", "required": ["days", "start", "end"], "properties": {
        "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri",
                                                     "sat", "sun"]}},
        "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}}}
    schedule = {"type": "object", "properties": {
        "mode": {"enum": ["always", "never", "weekly"]},
        "windows": {"type": "array", "maxItems": 50, "items": window},
        "on_sleep": {"enum": ["finish", "handback"]}}}
    return {"type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {"tags": {"oneOf": [tags(), {"type": "null"}]},
                           "schedule": schedule}}
