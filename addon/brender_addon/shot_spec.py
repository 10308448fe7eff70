"""Build and validate the JSON body of `POST /api/shots` from plain values.

bpy-free: the add-on feeds it values read from the scene and the panel,
`brender-submit` feeds it command-line options. Every problem is reported as a
`SpecError` whose message an artist can act on, with the offending `field`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

OUTPUT_FORMATS = ("PNG", "JPEG", "OPEN_EXR", "OPEN_EXR_MULTILAYER")
# Blender's file formats that write a movie rather than one image per frame.
MOVIE_FORMATS = ("FFMPEG", "AVI_JPEG", "AVI_RAW", "FRAMESERVER", "QUICKTIME", "H264", "THEORA", "XVID")

MAX_NAME = 120
MAX_CHUNK = 1000
MAX_FRAMES = 1_000_000
_BAD_NAME = re.compile(r"[\x00-\x1f/\\]")


class SpecError(ValueError):
    """A shot setting is wrong; `field` names it (as in the API's error body)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class ShotSettings:
    """What the artist chose; `files` and `blend_path` come from packing."""

    name: str
    frame_start: int
    frame_end: int
    frame_step: int = 1
    chunk_size: int = 10
    priority: int = 50
    output_format: str = "PNG"
    resolution_percentage: int = 100
    fps: float | None = None
    submitted_by: str | None = None
    allow_scripts: bool = False


def check_output_format(fmt: str) -> str:
    """Return the farm's name for `fmt` (a Blender file format) or raise."""
    fmt = (fmt or "").strip().upper()
    if fmt in MOVIE_FORMATS:
        raise SpecError(
            f"The output format is a movie ({fmt}): the farm renders image sequences. "
            f"Choose one of {', '.join(OUTPUT_FORMATS)} (and encode the movie afterwards).",
            "output_format")
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt == "EXR":
        fmt = "OPEN_EXR"
    if fmt not in OUTPUT_FORMATS:
        raise SpecError(
            f"The farm cannot write {fmt or 'an empty format'}: choose one of "
            f"{', '.join(OUTPUT_FORMATS)}.", "output_format")
    return fmt


def frame_count(frame_start: int, frame_end: int, frame_step: int = 1) -> int:
    if frame_step < 1 or frame_end < frame_start:
        return 0
    return (frame_end - frame_start) // frame_step + 1


def _int(value: Any, field: str, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpecError(f"{label} must be a whole number, not {value!r}.", field)
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"{label} must be a whole number, not {value!r}.", field) from None
    if number != int(number):
        raise SpecError(f"{label} must be a whole number, not {value!r}.", field)
    return int(number)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError("The shot needs a name.", "name")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise SpecError(f"The shot name is too long ({len(name)} characters, at most {MAX_NAME}).", "name")
    if _BAD_NAME.search(name):
        raise SpecError("The shot name may not contain slashes or control characters.", "name")
    return name


def _check_files(files: Iterable[dict], blend_path: str) -> list[dict]:
    out: list[dict] = []
    seen: set[str] = set()
    for entry in files:
        path = str(entry.get("path", ""))
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or ".." in parts or "" in parts \
                or re.match(r"^[A-Za-z]:", path):
            raise SpecError(f"File path {path!r} must be relative, with '/' and no '..'.", "files")
        if path in seen:
            raise SpecError(f"File {path!r} is listed twice.", "files")
        seen.add(path)
        digest = str(entry.get("sha256", ""))
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise SpecError(f"File {path!r} has no valid sha256.", "files")
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise SpecError(f"File {path!r} has no valid size.", "files")
        out.append({"path": path, "sha256": digest, "size": size})
    if not out:
        raise SpecError("The shot has no files.", "files")
    if blend_path not in seen:
        raise SpecError(f"The blend file {blend_path!r} is not among the shot's files.", "blend_path")
    if not blend_path.lower().endswith(".blend"):
        raise SpecError(f"{blend_path!r} is not a .blend file.", "blend_path")
    return out


def validate(settings: ShotSettings) -> ShotSettings:
    """Check the artist's settings (no files needed). Returns a normalised copy."""
    name = _check_name(settings.name)
    start = _int(settings.frame_start, "frame_start", "The first frame")
    end = _int(settings.frame_end, "frame_end", "The last frame")
    step = _int(settings.frame_step, "frame_step", "The frame step")
    if step < 1:
        raise SpecError(f"The frame step must be at least 1 (it is {step}).", "frame_step")
    if start < 0:
        raise SpecError(f"The first frame cannot be negative (it is {start}).", "frame_start")
    if end < start:
        raise SpecError(f"The frame range is empty: it ends ({end}) before it starts ({start}).", "frame_end")
    if frame_count(start, end, step) > MAX_FRAMES:
        raise SpecError(f"Too many frames (more than {MAX_FRAMES}).", "frame_end")
    chunk = _int(settings.chunk_size, "chunk_size", "The chunk size")
    if not 1 <= chunk <= MAX_CHUNK:
        raise SpecError(f"The chunk size must be between 1 and {MAX_CHUNK} frames (it is {chunk}).", "chunk_size")
    priority = _int(settings.priority, "priority", "The priority")
    if not 0 <= priority <= 100:
        raise SpecError(f"The priority must be between 0 and 100 (it is {priority}).", "priority")
    res = _int(settings.resolution_percentage, "resolution_percentage", "The resolution percentage")
    if not 1 <= res <= 1000:
        raise SpecError(f"The resolution percentage must be between 1 and 1000 (it is {res}).",
                        "resolution_percentage")
    fps = settings.fps
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
            raise SpecError(f"The frame rate must be a positive number (it is {fps!r}).", "fps")
        fps = float(fps)
    who = settings.submitted_by
    if who is not None:
        who = str(who)[:MAX_NAME]
    return ShotSettings(
        name=name, frame_start=start, frame_end=end, frame_step=step, chunk_size=chunk,
        priority=priority, output_format=check_output_format(settings.output_format),
        resolution_percentage=res, fps=fps, submitted_by=who,
        allow_scripts=bool(settings.allow_scripts))


def build(settings: ShotSettings, files: Iterable[dict], blend_path: str) -> dict:
    """Return the body of `POST /api/shots`, or raise `SpecError`."""
    s = validate(settings)
    body: dict[str, Any] = {
        "name": s.name,
        "blend_path": str(blend_path),
        "files": _check_files(files, str(blend_path)),
        "frame_start": s.frame_start,
        "frame_end": s.frame_end,
        "frame_step": s.frame_step,
        "chunk_size": s.chunk_size,
        "priority": s.priority,
        "output_format": s.output_format,
        "resolution_percentage": s.resolution_percentage,
        "allow_scripts": s.allow_scripts,
    }
    if s.fps is not None:
        body["fps"] = s.fps
    if s.submitted_by:
        body["submitted_by"] = s.submitted_by
    return body
