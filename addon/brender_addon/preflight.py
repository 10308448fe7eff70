"""The checks a shot passes before anything is uploaded, shared by the add-on and
`brender-submit`.

bpy-free: the add-on describes the scene from bpy, the CLI from the .blend
itself (blend_info.py); both get the same problems with the same words.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import shot_spec
from .shot_spec import SpecError


class Problem(SpecError):
    """A pre-flight problem: the message for a report, `short` for a panel line."""

    def __init__(self, message: str, field: str | None, short: str):
        super().__init__(message, field)
        self.short = short


class NeverSaved(Problem):
    pass


class UnsavedChanges(Problem):
    pass


@dataclass
class SceneFacts:
    """What the checks need to know about the scene that will render."""

    name: str
    camera: str | None                 # the scene's active camera object
    output_format: str                 # the file's own (Blender's name, e.g. PNG, FFMPEG)
    frame_start: int
    frame_end: int
    frame_step: int
    view_layers: list[str] = field(default_factory=list)
    cameras: set[str] = field(default_factory=set)   # camera objects an override may pick


def check_saved(filepath: str | None, dirty: bool) -> None:
    if not filepath:
        raise NeverSaved("This file was never saved: save it first (File › Save As), "
                         "the farm renders the saved file.", "blend_path", "The file was never saved")
    if dirty:
        raise UnsavedChanges("This file has unsaved changes: save it first, the farm "
                             "renders the saved file.", "blend_path", "The file has unsaved changes")


def _camera(facts: SceneFacts, render: dict[str, Any]) -> Problem | None:
    wanted = render.get("camera")
    if wanted is not None:
        if wanted not in facts.cameras:
            return Problem(f"There is no camera object {wanted!r} in this file "
                           f"(cameras: {', '.join(sorted(facts.cameras)) or 'none'}).",
                           "render.camera", f"No camera object {wanted!r}")
        return None
    if facts.camera is None:
        return Problem(f"Scene '{facts.name}' has no active camera: the farm cannot "
                       "render it. Set one in Scene Properties, or pick a camera override.",
                       "render.camera", "The scene has no camera")
    return None


def _output(facts: SceneFacts, render: dict[str, Any]) -> Problem | None:
    override = render.get("output_format")
    try:
        shot_spec.check_output_format(override if override is not None else facts.output_format)
    except SpecError as err:
        if override is not None:
            return Problem(str(err), err.field, f"The farm cannot write {override}")
        kind = "a movie" if facts.output_format in shot_spec.MOVIE_FORMATS else "not a format the farm stores"
        return Problem(
            f"Scene '{facts.name}' writes {facts.output_format}, {kind}: the farm renders "
            f"image sequences. Override the output format with one of "
            f"{', '.join(shot_spec.OUTPUT_FORMATS)} (and encode a movie afterwards).",
            "render.output_format",
            f"Output format {facts.output_format} is not an image format for the farm")
    return None


def _view_layers(facts: SceneFacts, render: dict[str, Any]) -> Problem | None:
    unknown = [name for name in render.get("view_layers") or () if name not in facts.view_layers]
    if unknown:
        return Problem(f"Scene '{facts.name}' has no view layer {', '.join(map(repr, unknown))} "
                       f"(its layers: {', '.join(facts.view_layers)}).", "render.view_layers",
                       f"No view layer {unknown[0]!r}")
    return None


def _frames(frame_total: int, label: str) -> Problem | None:
    if frame_total == 0:
        return Problem(f"The frame range {label} is empty: nothing to render.", "frame_end",
                       "The frame range is empty")
    return None


def problems(facts: SceneFacts, render: dict[str, Any], frame_total: int,
             frames_label: str) -> list[Problem]:
    """Every problem of the scene with these overrides, in the order they are reported."""
    found = [_camera(facts, render), _output(facts, render), _view_layers(facts, render),
             _frames(frame_total, frames_label)]
    return [p for p in found if p is not None]


def check(facts: SceneFacts, render: dict[str, Any], frame_total: int, frames_label: str) -> None:
    """Raise the first problem, if any."""
    for problem in problems(facts, render, frame_total, frames_label):
        raise problem
