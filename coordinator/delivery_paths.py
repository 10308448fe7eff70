"""Where delivered frames go: output roots, a shot's output template, and the checks
that keep every delivered file inside its root.

The coordinator is started with output roots (`--output-root NAME=PATH`, or a plain
PATH named after its last folder). A shot names one (`output_root`; it may be left out
when the farm has exactly one) and a template (`output_template`), a relative path
written with these fields:

  {project}   the .blend file's name without `.blend`
  {shot}      the shot's name
  {shot_id}   the shot's id
  {frame}     the frame number; a width may be asked for: {frame:04d}
  {ext}       the frame file's extension (png, exr, jpg, ...)

`{frame}` is required (else every frame would land on one file). Text fields are made
safe for a path: anything but letters, digits, space, `_ . + -` becomes `_`, and
leading dots are dropped, so a value is never `..` nor holds a separator. A template
that is absolute, holds `..` or `.` or an empty folder, a backslash, an unknown field
or a conversion is refused, and so is one whose path, resolved with the symlinks that
exist, leaves its root. Every delivery checks the resolved folder again, since a
symlink may appear later (`delivered_files.copy_batch`: once per folder and group of frames).
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any

from .validation import ValidationError

FIELDS = ("project", "shot", "shot_id", "frame", "ext")
MAX_TEMPLATE = 500
FRAME_SPEC = re.compile(r"0?[1-9]?d?")
UNSAFE = re.compile(r"[^A-Za-z0-9 _.+-]+")
ROOT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_roots(values: list[str]) -> dict[str, Path]:
    """`--output-root` values, `NAME=PATH` or `PATH`, to {name: resolved path}."""
    roots: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).resolve().name or "root", value
        if not ROOT_NAME.match(name):
            raise ValueError(f"--output-root {value!r}: a name is letters, digits, _ . -")
        if name in roots:
            raise ValueError(f"--output-root {value!r}: the name {name!r} is given twice")
        roots[name] = Path(path).resolve()
    return roots


def safe_text(value: str) -> str:
    return UNSAFE.sub("_", value).strip(" ").lstrip(".")[:100] or "_"


def render(template: str, shot: dict[str, Any], number: int, ext: str) -> str:
    """The relative path of frame `number` of `shot` (a row with id, name, blend_path)."""
    project = Path(str(shot.get("blend_path") or "")).name
    project = project[:-6] if project.lower().endswith(".blend") else project
    return template.format(project=safe_text(project), shot=safe_text(str(shot["name"])),
                           shot_id=int(shot.get("id") or 0), frame=int(number),
                           ext=safe_text(ext))


def inside(root: Path, relative: str) -> Path:
    """The absolute path of `relative` under `root`, its existing symlinks resolved;
    raises ValueError when that leaves the root."""
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(real_root / relative))
    if target == real_root or not target.is_relative_to(real_root):
        raise ValueError(f"{relative!r} leads outside the output root")
    return target


def inside_folder(root: Path, folder: str) -> str:
    """The real path of `folder` (relative; '' for the root itself) under `root`, its
    existing symlinks resolved; raises ValueError when that leaves the root."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, folder))
    if not within(real_root, real):
        raise ValueError(f"{folder!r} leads outside the output root")
    return real


def within(real_root: str, real: str) -> bool:
    """`real` (a path without symlinks) is `real_root` or under it."""
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def check_template(template: Any) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ValidationError("output_template", "must be a non-empty text")
    if len(template) > MAX_TEMPLATE:
        raise ValidationError("output_template", f"is longer than {MAX_TEMPLATE} characters")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in template) or "\\" in template:
        raise ValidationError("output_template", "must not hold control characters or '\\'")
    if template.startswith("/") or re.match(r"^[A-Za-z]:", template):
        raise ValidationError("output_template", "must be a relative path, not absolute")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError("output_template", f"is not a template: {exc}") from None
    fields = set()
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS:
            raise ValidationError("output_template", f"unknown field {{{field[:40]}}}; the "
                                  f"fields are {', '.join('{%s}' % f for f in FIELDS)}")
        if conversion or (spec and (field != "frame" or not FRAME_SPEC.fullmatch(spec))):
            raise ValidationError("output_template", f"field {{{field}}} takes no such "
                                  "format (only {frame:04d} and the like)")
        fields.add(field)
    if "frame" not in fields:
        raise ValidationError("output_template", "must hold {frame}, or every frame "
                              "would land on one file")
    sample = render(template, {"id": 1, "name": "shot", "blend_path": "p.blend"}, 1, "png")
    if any(part in ("", ".", "..") for part in sample.split("/")):
        raise ValidationError("output_template", "must not hold '..', '.' or an empty folder")
    return template


def shot_output(body: dict, roots: dict[str, Path]) -> tuple[str | None, str | None]:
    """A submitted shot's (output_template, output_root), checked: (None, None) when it
    asks for no delivery."""
    template, root = body.get("output_template"), body.get("output_root")
    if template is None:
        if root is not None:
            raise ValidationError("output_template", "is required with output_root")
        return None, None
    template = check_template(template)
    if not roots:
        raise ValidationError("output_root", "this farm has no output roots "
                              "(start the coordinator with --output-root)")
    if root is None:
        if len(roots) != 1:
            raise ValidationError("output_root", f"is required: one of {', '.join(roots)}")
        root = next(iter(roots))
    if not isinstance(root, str) or root not in roots:
        raise ValidationError("output_root", f"must name an output root: one of "
                              f"{', '.join(sorted(roots))}")
    sample = render(template, {"id": 1, "name": str(body.get("name", "shot")),
                               "blend_path": str(body.get("blend_path", ""))}, 1, "png")
    try:
        inside(roots[root], sample)
    except ValueError:
        raise ValidationError("output_template", "leads outside the output root "
                              f"{root!r} (through '..' or a symlink)") from None
    return template, root
