"""Checks for everything a client sends; each failure names the field."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any


# Frame file extension per output format (CONTRACT.md "Frame file names").
OUTPUT_FORMATS = {
    "PNG": "png",
    "JPEG": "jpg",
    "OPEN_EXR": "exr",
    "OPEN_EXR_MULTILAYER": "exr",
    "TIFF": "tif",
    "BMP": "bmp",
    "TARGA": "tga",
    "WEBP": "webp",
}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FRAME_LIMIT = 1_000_000
MAX_FILES = 100_000
MAX_PATH = 1024


class ValidationError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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


def _int(body: dict, key: str, default: Any = None, lo: int = -FRAME_LIMIT,
         hi: int = FRAME_LIMIT) -> int:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(key, f"must be a whole number, not {value!r}"[:200])
    if not lo <= value <= hi:
        raise ValidationError(key, f"must be between {lo} and {hi}")
    return value


def _str(body: dict, key: str, default: Any = None, max_len: int = 200) -> str:
    value = body.get(key, default)
    if value is None:
        raise ValidationError(key, "is required")
    if not isinstance(value, str):
        raise ValidationError(key, "must be a string")
    if len(value) > max_len:
        raise ValidationError(key, f"is longer than {max_len} characters")
    if any(ord(c) < 32 for c in value):
        raise ValidationError(key, "must not contain control characters")
    return value


def sha256(value: Any, field: str = "sha256") -> str:
    if not isinstance(value, str) or not SHA256.match(value):
        raise ValidationError(field, "must be 64 lowercase hex digits")
    return value


def relative_path(value: Any, field: str = "path") -> str:
    """A project-relative POSIX path that cannot leave its root."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATH:
        raise ValidationError(field, "must be a non-empty relative path")
    if "\\" in value or "\x00" in value or any(ord(c) < 32 for c in value):
        raise ValidationError(field, "must use '/' and no control characters")
    path = PurePosixPath(value)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise ValidationError(field, "must be relative")
    if any(part in ("..", ".", "") for part in value.split("/")):
        raise ValidationError(field, "must not contain '..', '.' or empty parts")
    return value


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
    blend_path = relative_path(body.get("blend_path", clean[0]["path"]), "blend_path")
    if blend_path not in seen:
        raise ValidationError("blend_path", "must be one of the files")
    if not blend_path.lower().endswith(".blend"):
        raise ValidationError("blend_path", "must name a .blend file")
    from . import render_spec  # it builds on this module's checks
    frames, frames_text = render_spec.frame_list(body)
    chunk_size, chunk_mode = render_spec.chunking(body)
    fps = body.get("fps", 24)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise ValidationError("fps", "must be a number between 0 and 1000")
    allow_scripts = body.get("allow_scripts", False)
    if not isinstance(allow_scripts, bool):
        raise ValidationError("allow_scripts", "must be true or false")
    return ShotSpec(
        name=name, blend_path=blend_path, files=clean, frame_start=frames[0],
        frame_end=frames[-1], frame_step=_int(body, "frame_step", 1, 1, FRAME_LIMIT),
        chunk_size=chunk_size, priority=_int(body, "priority", 50, 0, 100),
        fps=float(fps), submitted_by=_str(body, "submitted_by", "", 100),
        allow_scripts=allow_scripts, render=render_spec.render_overrides(body),
        frames=frames, frames_text=frames_text, chunk_mode=chunk_mode,
        missing=render_spec.missing_files(body))


def priority(body: Any) -> int:
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    return _int(body, "priority", None, 0, 100)


def positive_id(raw: str, field: str = "id") -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationError(field, f"must be a positive whole number, not {raw[:40]!r}")
    return int(raw)
