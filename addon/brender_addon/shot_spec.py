"""Build and validate the JSON body of `POST /api/shots` from plain values.

bpy-free: the add-on feeds it values read from the scene and the panel,
`brender-submit` feeds it command-line options. Every problem is reported as a
`SpecError` whose message an artist can act on, with the offending `field`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .protocol import errors, formats, requirements, shot, text

OUTPUT_FORMATS = tuple(formats.OUTPUT_FORMATS)
MOVIE_FORMATS = formats.MOVIE_FORMATS
COLOR_DEPTHS = formats.COLOR_DEPTHS
COLOR_MODES = formats.COLOR_MODES
EXR_CODECS = formats.EXR_CODECS

MAX_NAME = shot.MAX_NAME
MAX_CHUNK = shot.MAX_CHUNK
MAX_FRAMES = shot.MAX_FRAMES
MAX_MISSING = shot.MAX_MISSING
MAX_NODES = shot.MAX_NODES
SAMPLES = shot.SAMPLES
DEVICES = requirements.DEVICE_CHOICES


class SpecError(ValueError):
    """A shot setting is wrong; `field` names it (as in the API's error body)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class ShotSettings:
    """What the artist chose; `files` and `blend_path` come from packing.

    `frames` ("1-10,20") replaces frame_start/frame_end when set; chunk_size None
    lets the coordinator cut jobs adaptively; `render` holds only the overrides
    of the file's own settings (CONTRACT.md); `missing` the files the artist
    chose to submit without. The rest is what the shot asks of its nodes
    (docs/scheduling.md); None or empty: nothing asked."""

    name: str
    frame_start: int | None = None
    frame_end: int | None = None
    frame_step: int = 1
    frames: str | None = None
    chunk_size: int | None = None
    priority: int = 50
    render: dict[str, Any] = field(default_factory=dict)
    fps: float | None = None
    submitted_by: str | None = None
    allow_scripts: bool = False
    missing: list[dict[str, str]] = field(default_factory=list)
    requires_tags: list[str] = field(default_factory=list)
    prefers_tags: list[str] = field(default_factory=list)
    device: str | None = None               # cpu, gpu, any; None: the file's own setting
    blender: str | None = None              # a version range, e.g. ">=4.2,<5"
    blender_saved_with: str | None = None   # "3.4": the Blender the file was saved with
    max_nodes: int | None = None            # at most this many nodes at once
    # Delivery to studio storage (docs/api.md, Delivery): the coordinator checks the
    # template against its --output-root folders.
    output_template: str | None = None      # e.g. "{project}/{shot}/{frame:04d}.{ext}"
    output_root: str | None = None          # the root's name (may be left out if one)
    rerender_suspicious: bool = False       # a frame that looks wrong is rendered again once


def check_output_format(fmt: str) -> str:
    """Return the farm's name for `fmt` (a Blender file format) or raise."""
    fmt = (fmt or "").strip().upper()
    if fmt in MOVIE_FORMATS:
        raise SpecError(
            f"The output format is a movie ({fmt}): the farm renders image sequences. "
            f"Choose one of {', '.join(OUTPUT_FORMATS)} (and encode the movie afterwards).",
            "render.output_format")
    fmt = formats.ALIASES.get(fmt, fmt)
    if fmt not in OUTPUT_FORMATS:
        raise SpecError(
            f"The farm cannot write {fmt or 'an empty format'}: choose one of "
            f"{', '.join(OUTPUT_FORMATS)}.", "render.output_format")
    return fmt


def parse_frames(frames: str) -> list[tuple[int, int]]:
    """`"1-10, 20"` -> [(1, 10), (20, 20)]; SpecError naming `frames` when malformed."""
    try:
        return shot.frame_items(str(frames))
    except shot.BadFrameItem as exc:
        if exc.reversed:
            raise SpecError(f"The frame range {exc.item} ends before it starts.",
                            "frames") from None
        raise SpecError(f"Frames must look like 1-10,20,30-40, not {frames!r}.",
                        "frames") from None


def frames_text(ranges: Iterable[tuple[int, int]]) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def frame_numbers(ranges: Iterable[tuple[int, int]], step: int = 1) -> set[int]:
    """The frames a `frames` string renders: `step` applies inside each range."""
    numbers: set[int] = set()
    for first, last in ranges:
        numbers.update(range(first, last + 1, max(step, 1)))
        if len(numbers) > MAX_FRAMES:
            raise SpecError(f"Too many frames (more than {MAX_FRAMES}).", "frames")
    return numbers


frame_count = shot.frame_count


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
    problem = text.name_problem(name)
    if problem:
        raise SpecError(f"The shot name {problem}.", "name")
    return name


def _check_files(files: Iterable[dict], blend_path: str) -> list[dict]:
    out: list[dict] = []
    seen: set[str] = set()
    for entry in files:
        path = str(entry.get("path", ""))
        problem = text.path_problem(path)
        if problem:
            raise SpecError(f"File path {path!r} must be relative, with '/' and no '..': "
                            f"it {problem}.", "files")
        if path in seen:
            raise SpecError(f"File {path!r} is listed twice.", "files")
        seen.add(path)
        digest = str(entry.get("sha256", ""))
        if not text.SHA256.match(digest):
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


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().upper()
    if text not in choices:
        raise SpecError(f"{key.replace('_', ' ')} must be one of {', '.join(choices)}, "
                        f"not {value!r}.", f"render.{key}")
    return text


def _name_value(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > shot.MAX_RENDER_NAME:
        raise SpecError(f"render {key} must be a name, not {value!r}.", f"render.{key}")
    return value.strip()


def _bounded(value: Any, key: str, low: int, high: int) -> int:
    number = _int(value, f"render.{key}", key.replace("_", " "))
    if not low <= number <= high:
        raise SpecError(f"{key.replace('_', ' ')} must be between {low} and {high} "
                        f"(it is {number}).", f"render.{key}")
    return number


def check_render(render: dict[str, Any]) -> dict[str, Any]:
    """Validate the overrides of CONTRACT.md's `render` object; None values are dropped."""
    out: dict[str, Any] = {}
    for key, value in render.items():
        if value is None:
            continue
        if key in ("scene", "camera", "view_transform", "look"):
            out[key] = _name_value(value, key)
        elif key == "view_layers":
            if isinstance(value, str) or not value:
                raise SpecError("render view_layers must be a list of view layer names.",
                                "render.view_layers")
            out[key] = list(dict.fromkeys(_name_value(v, key) for v in value))
        elif key == "output_format":
            out[key] = check_output_format(value)
        elif key == "color_depth":
            out[key] = _choice(value, key, COLOR_DEPTHS)
        elif key == "color_mode":
            out[key] = _choice(value, key, COLOR_MODES)
        elif key == "exr_codec":
            out[key] = _choice(value, key, EXR_CODECS)
        elif key == "exposure":
            low, high = shot.EXPOSURE
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value <= high:
                raise SpecError(f"exposure must be a number from {low} to {high}, not "
                                f"{value!r}.", "render.exposure")
            out[key] = float(value)
        elif key == "film_transparent":
            out[key] = bool(value)
        elif key in ("resolution_x", "resolution_y"):
            out[key] = _bounded(value, key, *shot.RESOLUTION)
        elif key == "resolution_percentage":
            out[key] = _bounded(value, key, *shot.RESOLUTION_PERCENTAGE)
        elif key == "samples":
            out[key] = _bounded(value, key, *shot.SAMPLES)
        else:
            raise SpecError(f"There is no render setting {key!r}.", f"render.{key}")
    return out


def check_tags(raw: Any, field: str) -> list[str]:
    """"gpu, big-ram" or a list -> ["gpu", "big-ram"]; tags no node has are fine
    (the shot says it waits for them)."""
    try:
        return requirements.parse_tags(raw, field)
    except errors.FieldError as exc:
        what = "required" if field.startswith("requires") else "preferred"
        raise SpecError(f"The {what} tags are wrong: {exc.field} {exc.message}.", field) from None


def check_device(raw: Any) -> str | None:
    """cpu, gpu or any; None or "": the file's own setting."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or raw.strip().lower() not in DEVICES:
        raise SpecError(f"The render device must be one of {', '.join(DEVICES)}, "
                        f"not {raw!r}.", "device")
    return raw.strip().lower()


def check_blender_range(raw: Any) -> str | None:
    """A Blender version range such as ">=4.2,<5" ("4.2": any 4.2.x), normalised;
    None or blank: none."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return requirements.VersionRange.parse(raw).text
    except ValueError as exc:
        reason = str(exc)
    shown = repr(raw if len(str(raw)) <= 60 else str(raw)[:60] + "...")
    if reason.startswith(("is ", "must ")):
        raise SpecError(f"The Blender version range {shown} {reason}.", "blender")
    raise SpecError(f"The Blender version range {shown} is not valid: {reason} "
                    "(write it like >=4.2,<5 or 4.2).", "blender")


def check_saved_with(raw: Any) -> str | None:
    try:
        return requirements.parse_saved_with(raw)
    except errors.FieldError as exc:
        raise SpecError(f"The Blender version the file was saved with {exc.message}.",
                        "blender_saved_with") from None


def series(version: Iterable[int]) -> str:
    """(3, 4, 1) -> "3.4": the Blender series a file saved by that version belongs to."""
    major, minor = list(version)[:2]
    return f"{major}.{minor}"


def _check_max_nodes(raw: Any) -> int | None:
    if raw is None:
        return None
    number = _int(raw, "max_nodes", "The node limit")
    if not 1 <= number <= MAX_NODES:
        raise SpecError(f"The node limit must be between 1 and {MAX_NODES} nodes "
                        f"(it is {number}).", "max_nodes")
    return number


def _check_missing(missing: Iterable[dict]) -> list[dict[str, str]]:
    out = [{"path": str(m["path"]), "used_by": str(m.get("used_by") or "")} for m in missing]
    if len(out) > MAX_MISSING:
        raise SpecError(f"More than {MAX_MISSING} files are missing: fix the file's paths first.",
                        "missing")
    return out


def validate(settings: ShotSettings) -> ShotSettings:
    """Check the artist's settings (no files needed). Returns a normalised copy."""
    name = _check_name(settings.name)
    step = _int(settings.frame_step, "frame_step", "The frame step")
    if step < 1:
        raise SpecError(f"The frame step must be at least 1 (it is {step}).", "frame_step")
    if step > shot.FRAME_LIMIT:
        raise SpecError(f"The frame step must be at most {shot.FRAME_LIMIT} (it is {step}).",
                        "frame_step")
    frames = None
    start = end = None
    if settings.frames is not None:
        ranges = parse_frames(settings.frames)
        frame_numbers(ranges, step)
        frames = frames_text(ranges)
    else:
        start = _int(settings.frame_start, "frame_start", "The first frame")
        end = _int(settings.frame_end, "frame_end", "The last frame")
        for value, key in ((start, "frame_start"), (end, "frame_end")):
            if not -shot.FRAME_LIMIT <= value <= shot.FRAME_LIMIT:
                raise SpecError(f"Frame {value} is out of range (-{shot.FRAME_LIMIT} to "
                                f"{shot.FRAME_LIMIT}).", key)
        if end < start:
            raise SpecError(f"The frame range is empty: it ends ({end}) before it starts ({start}).", "frame_end")
        if frame_count(start, end, step) > MAX_FRAMES:
            raise SpecError(f"Too many frames (more than {MAX_FRAMES}).", "frame_end")
    chunk = None
    if settings.chunk_size is not None:
        chunk = _int(settings.chunk_size, "chunk_size", "The chunk size")
        if not 1 <= chunk <= MAX_CHUNK:
            raise SpecError(f"The chunk size must be between 1 and {MAX_CHUNK} frames (it is {chunk}).", "chunk_size")
    priority = _int(settings.priority, "priority", "The priority")
    low, high = shot.PRIORITY
    if not low <= priority <= high:
        raise SpecError(f"The priority must be between {low} and {high} (it is {priority}).",
                        "priority")
    fps = settings.fps
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= shot.MAX_FPS:
            raise SpecError(f"The frame rate must be a positive number (it is {fps!r}).", "fps")
        fps = float(fps)
    who = settings.submitted_by
    if who is not None:
        who = str(who)[:shot.MAX_SUBMITTED_BY]
    return ShotSettings(
        name=name, frame_start=start, frame_end=end, frame_step=step, frames=frames,
        chunk_size=chunk, priority=priority, render=check_render(settings.render), fps=fps,
        submitted_by=who, allow_scripts=bool(settings.allow_scripts),
        missing=_check_missing(settings.missing),
        requires_tags=check_tags(settings.requires_tags, "requires_tags"),
        prefers_tags=check_tags(settings.prefers_tags, "prefers_tags"),
        device=check_device(settings.device), blender=check_blender_range(settings.blender),
        blender_saved_with=check_saved_with(settings.blender_saved_with),
        max_nodes=_check_max_nodes(settings.max_nodes),
        output_template=_check_text(settings.output_template, "output_template"),
        output_root=_check_text(settings.output_root, "output_root"),
        rerender_suspicious=bool(settings.rerender_suspicious))


def _check_text(raw: Any, field_name: str) -> str | None:
    """A free text field the coordinator judges; here only its text rules."""
    if raw is None or raw == "":
        return None
    try:
        return text.name_text(str(raw), field_name)
    except errors.FieldError as exc:
        raise SpecError(str(exc), field_name) from None


def build(settings: ShotSettings, files: Iterable[dict], blend_path: str) -> dict:
    """Return the body of `POST /api/shots`, or raise `SpecError`. Only what the
    artist set is sent: the file's own settings are the default."""
    s = validate(settings)
    body: dict[str, Any] = {
        "name": s.name,
        "blend_path": str(blend_path),
        "files": _check_files(files, str(blend_path)),
        "frame_step": s.frame_step,
        "priority": s.priority,
        "allow_scripts": s.allow_scripts,
    }
    if s.frames is not None:
        body["frames"] = s.frames
    else:
        body["frame_start"], body["frame_end"] = s.frame_start, s.frame_end
    if s.chunk_size is not None:
        body["chunk_size"] = s.chunk_size
    if s.render:
        body["render"] = s.render
    if s.missing:
        body["missing"] = s.missing
    if s.fps is not None:
        body["fps"] = s.fps
    if s.submitted_by:
        body["submitted_by"] = s.submitted_by
    for key in ("requires_tags", "prefers_tags", "device", "blender", "blender_saved_with",
                "max_nodes", "output_template", "output_root", "rerender_suspicious"):
        value = getattr(s, key)
        if value:
            body[key] = value
    return body
