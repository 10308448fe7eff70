"""Read the shot settings from Blender and check the file before anything leaves.

The checks that need only Blender (saved, unsaved changes, camera, output
format, frame range) run here on the main thread; the ones that need the farm
or the disk (coordinator reachable, token, missing files) run in `jobs.SubmitJob`
before its first upload.
"""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import bpy

from . import shot_spec
from .properties import settings_of
from .shot_spec import SpecError


class NeverSaved(SpecError):
    pass


class UnsavedChanges(SpecError):
    pass


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def frame_range(scene: Any) -> tuple[int, int, int]:
    props = settings_of(scene)
    if props.use_scene_range:
        return int(scene.frame_start), int(scene.frame_end), int(scene.frame_step)
    return int(props.frame_start), int(props.frame_end), int(props.frame_step)


def output_format(scene: Any) -> str:
    props = settings_of(scene)
    if props.output_format != "SCENE":
        return str(props.output_format)
    return str(scene.render.image_settings.file_format)


def default_name() -> str:
    return Path(bpy.data.filepath).stem if bpy.data.filepath else ""


def check_saved(just_saved: bool = False) -> Path:
    if not bpy.data.filepath:
        raise NeverSaved("This file was never saved: save it first (File › Save As), "
                         "the farm renders the saved file.")
    # Blender 3.4 in background mode still says is_dirty right after a save.
    if bpy.data.is_dirty and not just_saved:
        raise UnsavedChanges("This file has unsaved changes: save it first, the farm "
                             "renders the saved file.")
    return Path(bpy.data.filepath)


def gather(scene: Any, just_saved: bool = False) -> tuple[shot_spec.ShotSettings, Path]:
    """Check the file and scene; return the shot settings and the .blend path.

    Raises `SpecError` (or its subclasses `NeverSaved`, `UnsavedChanges`) with a
    message for the artist.
    """
    blend = check_saved(just_saved)
    if scene.camera is None:
        raise SpecError(f"Scene '{scene.name}' has no active camera: the farm cannot "
                        "render it. Set one in Scene Properties.", "camera")
    fmt = shot_spec.check_output_format(output_format(scene))
    start, end, step = frame_range(scene)
    if shot_spec.frame_count(start, end, step) == 0:
        raise SpecError(f"The frame range {start}-{end} is empty: nothing to render.", "frame_end")
    props = settings_of(scene)
    resolution = (int(scene.render.resolution_percentage) if props.use_scene_resolution
                  else int(props.resolution_percentage))
    settings = shot_spec.ShotSettings(
        name=props.shot_name.strip() or blend.stem,
        frame_start=start, frame_end=end, frame_step=step,
        chunk_size=int(props.chunk_size), priority=int(props.priority),
        output_format=fmt, resolution_percentage=resolution,
        fps=float(scene.render.fps) / float(scene.render.fps_base or 1.0),
        submitted_by=_user(), allow_scripts=bool(props.allow_scripts))
    return shot_spec.validate(settings), blend
