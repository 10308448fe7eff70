"""Read the shot settings from Blender and check the file before anything leaves.

The checks that need only the scene (saved, unsaved changes, camera, output
format, view layers, frame range) are preflight.py's, shared with
`brender-submit`, and run here on the main thread; the ones that need the farm
or the disk (coordinator reachable, token, missing files) run in
`jobs.SubmitJob` before its first upload.
"""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import bpy

from . import preflight, shot_spec
from .properties import OVERRIDES, settings_of


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


def default_name() -> str:
    return Path(bpy.data.filepath).stem if bpy.data.filepath else ""


def _override_value(props: Any, key: str) -> Any:
    value = getattr(props, key)
    if key == "camera":
        return value.name if value is not None else None
    if key == "view_layers":
        return [name.strip() for name in value.split(",") if name.strip()] or None
    if key == "resolution":
        return tuple(value)
    return value


def overrides(scene: Any) -> dict[str, Any]:
    """The panel's overrides as CONTRACT.md's `render` object (only those ticked)."""
    props = settings_of(scene)
    render: dict[str, Any] = {}
    for key in OVERRIDES:
        if not getattr(props, f"override_{key}"):
            continue
        value = _override_value(props, key)
        if key == "resolution":
            render["resolution_x"], render["resolution_y"] = value
        elif value is not None:
            render[key] = value
    if len(bpy.data.scenes) > 1:
        render["scene"] = scene.name     # the file may have been saved showing another scene
    return render


def scene_facts(scene: Any) -> preflight.SceneFacts:
    start, end, step = frame_range(scene)
    return preflight.SceneFacts(
        name=scene.name, camera=scene.camera.name if scene.camera else None,
        output_format=str(scene.render.image_settings.file_format),
        frame_start=start, frame_end=end, frame_step=step,
        view_layers=[layer.name for layer in scene.view_layers],
        cameras={obj.name for obj in scene.objects if obj.type == "CAMERA"})


def saved_with() -> str:
    """This Blender's series ("3.4"): the add-on saves the file it submits."""
    return shot_spec.series(bpy.app.version)


def node_needs(scene: Any) -> dict[str, Any]:
    """What the panel asks of the nodes, as ShotSettings fields (unchecked)."""
    props = settings_of(scene)
    return {
        "requires_tags": props.requires_tags, "prefers_tags": props.prefers_tags,
        "device": None if props.device == "FILE" else str(props.device).lower(),
        "blender": props.blender_range, "blender_saved_with": saved_with(),
        "max_nodes": int(props.max_nodes) if props.use_max_nodes else None,
    }


NEEDS_SHORT = {"blender": "The Blender version range is not valid",
               "requires_tags": "A required tag is not valid",
               "prefers_tags": "A preferred tag is not valid"}


def needs_problems(scene: Any) -> list[preflight.Problem]:
    """Bad tags or a bad Blender range, for the panel's warnings."""
    needs = node_needs(scene)
    found = []
    for key, check in (("requires_tags", lambda v: shot_spec.check_tags(v, "requires_tags")),
                       ("prefers_tags", lambda v: shot_spec.check_tags(v, "prefers_tags")),
                       ("blender", shot_spec.check_blender_range)):
        try:
            check(needs[key])
        except shot_spec.SpecError as err:
            found.append(preflight.Problem(str(err), err.field, NEEDS_SHORT[key]))
    return found


def problems(scene: Any) -> list[preflight.Problem]:
    """The scene's problems, for the panel's warnings."""
    start, end, step = frame_range(scene)
    try:
        render = shot_spec.check_render(overrides(scene))
    except shot_spec.SpecError as err:
        return [preflight.Problem(str(err), err.field, str(err))]
    return preflight.problems(scene_facts(scene), render, shot_spec.frame_count(start, end, step),
                              f"{start}-{end}") + needs_problems(scene)


def gather(scene: Any, just_saved: bool = False) -> tuple[shot_spec.ShotSettings, Path]:
    """Check the file and scene; return the shot settings and the .blend path.

    Raises `SpecError` (a `preflight.Problem` for the scene's problems) with a
    message for the artist.
    """
    # Blender 3.4 in background mode still says is_dirty right after a save.
    preflight.check_saved(bpy.data.filepath, bpy.data.is_dirty and not just_saved)
    blend = Path(bpy.data.filepath)
    start, end, step = frame_range(scene)
    render = shot_spec.check_render(overrides(scene))
    preflight.check(scene_facts(scene), render, shot_spec.frame_count(start, end, step),
                    f"{start}-{end}")
    props = settings_of(scene)
    settings = shot_spec.ShotSettings(
        name=props.shot_name.strip() or blend.stem,
        frame_start=start, frame_end=end, frame_step=step,
        chunk_size=int(props.chunk_size) if props.use_fixed_chunks else None,
        priority=int(props.priority), render=render,
        fps=float(scene.render.fps) / float(scene.render.fps_base or 1.0),
        submitted_by=_user(), allow_scripts=bool(props.allow_scripts), **node_needs(scene))
    return shot_spec.validate(settings), blend
