"""Checks for everything a client sends; each failure names the field.

The rules (formats, a shot's limits, text, project-relative paths and file trees) are
brender_protocol's, shared with the node and the add-on; here are the coordinator's
generic helpers (ids, JSON documents: depth, number size, UTF-8) and the whole shot's
check. Every route and the node channel use them, so bad input is refused at the edge
with a 400 and never reaches the database or a node.
"""
from __future__ import annotations

import json
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from brender_protocol import requirements
from brender_protocol import shot as shot_rules
from brender_protocol.errors import FieldError as ValidationError
from brender_protocol.formats import OUTPUT_FORMATS
from brender_protocol.text import (MAX_PATH, SHA256, file_tree_problem, name_text,
                                   relative_path, sha256, text, text_problem)

# The rules are brender_protocol's; routes and the store take them from here.
__all__ = ["MAX_PATH", "OUTPUT_FORMATS", "SHA256", "ShotSpec", "ValidationError",
           "document_problem", "file_tree_problem", "name_text", "parse_json", "positive_id",
           "priority", "relative_path", "sha256", "shot_changes", "shot_spec", "text", "text_problem",
           "whole_number"]


FRAME_LIMIT = shot_rules.FRAME_LIMIT
MAX_FILES = shot_rules.MAX_FILES
MAX_DEPTH = 32              # the deepest document the API takes is 4 levels
MAX_NUMBER_DIGITS = 20      # beyond int64: no field of ours takes such a number
ASCII_INT = re.compile(r"-?[0-9]{1,18}")


def whole_number(raw: Any, field: str, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    """A whole number written in ASCII digits (from a path or query), within [lo, hi].

    `str.isdigit` accepts "²" and "①", which `int()` refuses; a number of thousands
    of digits would cost `int()` quadratic time: both are refused here first."""
    if not isinstance(raw, str) or not ASCII_INT.fullmatch(raw):
        shown = raw[:40] if isinstance(raw, str) else raw
        raise ValidationError(field, f"must be a whole number, not {shown!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ValidationError(field, f"must be between {lo} and {hi}")
    return value


def positive_id(raw: str, field: str = "id") -> int:
    return whole_number(raw, field, 0)


def parse_json(raw: bytes | bytearray | str, field: str = "body") -> Any:
    """Decode a JSON document: UTF-8, at most MAX_DEPTH deep, numbers of at most
    MAX_NUMBER_DIGITS digits, no NaN or Infinity, no lone surrogates in any string.

    orjson decodes the common case quickly and refuses everything odd; an odd
    document is decoded again by the standard library only to say which field is
    wrong (a surrogate in `files[3].path` is named as such)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = _parse_strictly(raw, field)
    problem = document_problem(doc, field)
    if problem:
        raise ValidationError(*problem)
    return doc


def _parse_strictly(raw: bytes | bytearray | str, field: str) -> Any:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(field, f"is not UTF-8 text (byte {exc.start})") from None

    def number(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
            raise ValidationError(field, f"holds a number of more than {MAX_NUMBER_DIGITS} "
                                  "digits")
        return int(digits)

    def constant(name: str) -> None:
        raise ValidationError(field, f"{name} is not a JSON number")

    try:
        return json.loads(raw, parse_int=number, parse_constant=constant)
    except ValidationError:
        raise
    except RecursionError:
        raise ValidationError(field, f"is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(field, f"malformed JSON: {exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}") from None
    except ValueError as exc:  # a float the standard library cannot hold
        raise ValidationError(field, f"malformed JSON: {exc}"[:200]) from None


def document_problem(doc: Any, field: str = "body") -> tuple[str, str] | None:
    """(field, message) for the first thing in a decoded document that the farm
    cannot take: nesting past MAX_DEPTH, or a key or string that is not valid text.
    Iterative: a deep document must not exhaust the stack here either."""
    stack: list[tuple[Any, str, int]] = [(doc, field, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and text_problem(value, controls=True):
                return where, "must be valid Unicode text (it holds a lone surrogate)"
            continue
        if depth >= MAX_DEPTH and isinstance(value, (list, dict)):
            return field, f"is nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)
                         if not isinstance(v, (int, float, bool, type(None)))
                         and not (isinstance(v, str) and v.isascii()))
        elif isinstance(value, dict):
            for key, v in value.items():
                inner = key if where == field else f"{where}.{key}"
                if not key.isascii() and text_problem(key, controls=True):
                    return where, "has a key that is not valid Unicode text"
                stack.append((v, inner, depth + 1))
    return None


@dataclass
class ShotSpec:
    name: str
    blend_path: str
    files: list[dict]
    frame_start: int
    frame_end: int
    frame_step: int = 1
    chunk_size: int | None = None   # None: adaptive ("auto")
    priority: int = 50
    fps: float = 24.0
    submitted_by: str = ""
    allow_scripts: bool = False
    # How the file renders (coordinator/render_spec.py): only the overrides asked for.
    render: dict = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)
    frames_text: str | None = None
    chunk_mode: str = "auto"
    missing: list[dict] = field(default_factory=list)
    # What it asks of its nodes (coordinator/matching.py): only the keys that are set.
    requirements: dict = field(default_factory=dict)
    max_nodes: int | None = None
    # Issue 17: delivery to studio storage (set by the route, which knows the roots)
    # and whether a suspicious frame is rendered once more, on another node.
    output_template: str | None = None
    output_root: str | None = None
    rerender_suspicious: bool = False


def _int(body: dict, key: str, default: Any = None, lo: int = -FRAME_LIMIT,
         hi: int = FRAME_LIMIT) -> int:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(key, f"must be a whole number, not {reprlib.repr(value)}")
    if not lo <= value <= hi:
        raise ValidationError(key, f"must be between {lo} and {hi}")
    return value


def _str(body: dict, key: str, default: Any = None, max_len: int = shot_rules.MAX_NAME) -> str:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    return name_text(value, key, max_len)


def shot_spec(body: Any) -> ShotSpec:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    name = _str(body, "name").strip()
    if not name:
        raise ValidationError("name", "must not be empty")
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise ValidationError("files", "must be a non-empty list of {path, sha256, size}")
    if len(files) > MAX_FILES:
        raise ValidationError("files", f"has more than {MAX_FILES} entries")
    clean, seen = [], set()
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise ValidationError(f"files[{i}]", "must be an object")
        path = relative_path(f.get("path"), f"files[{i}].path")
        if path in seen:
            raise ValidationError(f"files[{i}].path", "is listed twice")
        seen.add(path)
        size = _int(f, "size", 0, 0, 1 << 50)
        clean.append({"path": path, "sha256": sha256(f.get("sha256"), f"files[{i}].sha256"),
                      "size": size})
    tree = file_tree_problem([str(f["path"]) for f in clean])
    if tree:
        raise ValidationError(*tree)
    blend_path = relative_path(body.get("blend_path", clean[0]["path"]), "blend_path")
    if blend_path not in seen:
        raise ValidationError("blend_path", "must be one of the files")
    if not blend_path.lower().endswith(".blend"):
        raise ValidationError("blend_path", "must name a .blend file")
    from . import render_spec  # it builds on this module's checks
    frames, frames_text = render_spec.frame_list(body)
    chunk_size, chunk_mode = render_spec.chunking(body)
    fps = body.get("fps", 24)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= shot_rules.MAX_FPS:
        raise ValidationError("fps", f"must be a number between 0 and {shot_rules.MAX_FPS}")
    allow_scripts = body.get("allow_scripts", False)
    if not isinstance(allow_scripts, bool):
        raise ValidationError("allow_scripts", "must be true or false")
    rerender = body.get("rerender_suspicious", False)
    if not isinstance(rerender, bool):
        raise ValidationError("rerender_suspicious", "must be true or false")
    return ShotSpec(
        rerender_suspicious=rerender, name=name, blend_path=blend_path, files=clean, frame_start=frames[0],
        frame_end=frames[-1], frame_step=_int(body, "frame_step", 1, 1, FRAME_LIMIT),
        chunk_size=chunk_size, priority=_int(body, "priority", shot_rules.DEFAULT_PRIORITY, *shot_rules.PRIORITY),
        fps=float(fps), submitted_by=_str(body, "submitted_by", "", shot_rules.MAX_SUBMITTED_BY),
        allow_scripts=allow_scripts, render=render_spec.render_overrides(body),
        frames=frames, frames_text=frames_text, chunk_mode=chunk_mode,
        missing=render_spec.missing_files(body), requirements=shot_requirements(body),
        max_nodes=max_nodes(body))


def shot_requirements(body: dict) -> dict:
    """requires_tags, prefers_tags, device, blender (a version range) and
    blender_saved_with, checked; only those set are kept."""
    found = {"requires_tags": requirements.parse_tags(body.get("requires_tags"),
                                                      "requires_tags"),
             "prefers_tags": requirements.parse_tags(body.get("prefers_tags"), "prefers_tags"),
             "device": requirements.parse_device(body.get("device")),
             "blender": requirements.parse_range(body.get("blender")),
             "blender_saved_with": requirements.parse_saved_with(body.get("blender_saved_with"))}
    return {k: v for k, v in found.items() if v}


def max_nodes(body: dict) -> int | None:
    """At most this many nodes render the shot at once (null: no cap)."""
    if body.get("max_nodes") is None:
        return None
    return _int(body, "max_nodes", None, 1, shot_rules.MAX_NODES)


def shot_changes(body: Any) -> dict:
    """What `PATCH /api/shots/{id}` changes: priority and/or max_nodes."""
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    unknown = sorted(set(body) - {"priority", "max_nodes"})
    if unknown:
        raise ValidationError(str(unknown[0])[:40], "cannot be changed (priority, max_nodes can)")
    if not body:
        raise ValidationError("body", "give priority or max_nodes")
    changes: dict[str, Any] = {}
    if "priority" in body:
        changes["priority"] = _int(body, "priority", None, *shot_rules.PRIORITY)
    if "max_nodes" in body:
        changes["max_nodes"] = max_nodes(body)
    return changes


def priority(body: Any) -> int:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    return _int(body, "priority", None, *shot_rules.PRIORITY)
