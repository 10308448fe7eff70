"""Runs inside Blender (imported by blender_driver.py): the one place a shot's file is
made ready to render, whichever way it was loaded (a spare's `open_mainfile`, a warm
session's or a process per chunk's command line).

The file's own settings are the default; a shot's `render` overrides change only the
keys they set. A bad override (a scene, camera or view layer the file does not have, a
colour mode the format cannot write) raises BadOverride naming it. The assignment's
`device` (cpu, gpu, any; absent: the file's own) is set up here too (blender_devices).
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Sequence

import bpy

# brender_protocol/formats.py, loaded by its path by blender_driver.py first (the
# farm's packages stay off Blender's sys.path); the package's outside Blender.
formats = sys.modules.get("brender_formats") or importlib.import_module("brender_protocol.formats")
devices = sys.modules.get("brender_blender_devices") or importlib.import_module("node.blender_devices")
# The still formats the farm stores; anything else cannot be uploaded.
STORED_FORMATS = tuple(formats.OUTPUT_FORMATS)
MOVIE_FORMATS = formats.MOVIE_FORMATS
EXR_FORMATS = formats.EXR_FORMATS
Warn = Callable[[str], None]


class BadOverride(Exception):
    """The shot asks for something this file cannot do; the reason names it."""


def prepare(render: dict, warn: Warn, gpus: Sequence[int] | None = None) -> bpy.types.Scene:
    """Apply `render` (the shot's overrides and device) to the loaded file; returns the
    scene. `gpus`: the node's --gpus selection (None: all its GPUs)."""
    scene = _choose_scene(render.get("scene"))
    if render.get("camera") is not None:
        _set_camera(scene, render["camera"])
    if render.get("view_layers") is not None:
        _set_view_layers(scene, render["view_layers"])
    _set_output(scene, render, warn)
    settings = scene.render
    if render.get("film_transparent") is not None:
        settings.film_transparent = bool(render["film_transparent"])
    for key in ("resolution_x", "resolution_y", "resolution_percentage"):
        if render.get(key) is not None:
            setattr(settings, key, int(render[key]))
    if render.get("samples") is not None:
        _set_samples(scene, int(render["samples"]), warn)
    devices.configure(scene, render.get("device"), gpus, warn)
    # The farm writes each frame to a path of its own: these change no pixel.
    settings.use_file_extension = True
    settings.use_overwrite = True
    settings.use_placeholder = False
    if hasattr(settings, "use_single_layer"):
        # Honoured by the render operator, ignored by `blender -b -f`: render every layer.
        settings.use_single_layer = False
    _disable_missing_denoiser(scene, warn)
    return scene


def _choose_scene(name: str | None) -> bpy.types.Scene:
    manager = bpy.context.window_manager
    window = bpy.context.window or next(iter(manager.windows if manager else ()), None)
    if name is None:
        # The file's active scene, as `blender -b FILE -f N` renders it.
        active = window.scene if window is not None else bpy.context.scene
        if active is None:
            raise BadOverride("render.scene: the file has no scene")
        return active
    scene = bpy.data.scenes.get(name)
    if scene is None:
        raise BadOverride(f"render.scene: no scene '{name}' in the file "
                          f"(it has {_names(bpy.data.scenes)})")
    # As `blender -b FILE -S NAME` does: the window shows it, so it is the context's.
    for win in bpy.context.window_manager.windows:
        win.scene = scene
    return scene


def _set_camera(scene: bpy.types.Scene, name: str) -> None:
    camera = bpy.data.objects.get(name)
    if camera is None or camera.type != "CAMERA" or name not in scene.objects:
        cameras = [o for o in scene.objects if o.type == "CAMERA"]
        raise BadOverride(f"render.camera: no camera object '{name}' in scene '{scene.name}' "
                          f"(it has {_names(cameras)})")
    scene.camera = camera
    # Markers bound to cameras would switch back on the next frame change.
    for marker in scene.timeline_markers:
        marker.camera = None


def _set_view_layers(scene: bpy.types.Scene, names: list[str]) -> None:
    missing = [n for n in names if n not in scene.view_layers]
    if missing:
        raise BadOverride(f"render.view_layers: no view layer '{missing[0]}' in scene "
                          f"'{scene.name}' (it has {_names(scene.view_layers)})")
    for layer in scene.view_layers:
        layer.use = layer.name in names


def _set_output(scene: bpy.types.Scene, render: dict, warn: Warn) -> None:
    image = scene.render.image_settings
    fmt = render.get("output_format")
    if fmt is not None:
        image.file_format = fmt
    elif image.file_format in MOVIE_FORMATS:
        # Many nodes render a shot's frames apart: a movie is encoded from them afterwards.
        warn(f"set render.output_format to one of {', '.join(STORED_FORMATS)}")
        raise BadOverride(f"movie output format {image.file_format} cannot be rendered "
                          "frame by frame")
    if image.file_format not in STORED_FORMATS:
        raise BadOverride(f"output format {image.file_format} is not one the farm stores "
                          f"({', '.join(STORED_FORMATS)}): set render.output_format")
    for key in ("color_depth", "color_mode", "exr_codec"):
        value = render.get(key)
        if value is None:
            continue
        if key == "exr_codec" and image.file_format not in EXR_FORMATS:
            warn(f"render.exr_codec {value} ignored: {image.file_format} is not EXR")
            continue
        _set_enum(image, key, str(value), f"render.{key}",
                  f"{image.file_format} cannot be written with {key} {value}")
    view = _view_settings(scene)
    if render.get("view_transform") is not None:
        _set_enum(view, "view_transform", render["view_transform"], "render.view_transform",
                  f"no view transform '{render['view_transform']}' in this Blender")
    if render.get("look") is not None:
        _set_enum(view, "look", render["look"], "render.look",
                  f"no look '{render['look']}' for view transform '{view.view_transform}'")
    if render.get("exposure") is not None:
        view.exposure = float(render["exposure"])


def _set_samples(scene: bpy.types.Scene, samples: int, warn: Warn) -> None:
    """Cycles' samples (its adaptive sampling's most), or Eevee's render samples
    (`BLENDER_EEVEE`; 4.2 to 4.4 call Eevee Next `BLENDER_EEVEE_NEXT`)."""
    engine = scene.render.engine
    if engine == "CYCLES":
        scene.cycles.samples = samples
    elif engine.startswith("BLENDER_EEVEE") and scene.eevee is not None:
        scene.eevee.taa_render_samples = samples
    else:
        warn(f"render.samples ignored: {engine} has no render samples")


def _view_settings(scene: bpy.types.Scene) -> bpy.types.ColorManagedViewSettings:
    view = scene.view_settings
    if view is None:  # Blender always sets it; the stubs type every pointer optional
        raise BadOverride(f"scene '{scene.name}' has no colour management settings")
    return view


def _set_enum(owner: Any, key: str, value: str, field: str, why: str) -> None:
    try:
        setattr(owner, key, value)
    except TypeError:
        raise BadOverride(f"{field}: {why}") from None


def _disable_missing_denoiser(scene: bpy.types.Scene, warn: Warn) -> None:
    """A Blender built without OpenImageDenoise fails every denoised frame: render
    without it and say so, rather than fail the shot on this node."""
    if scene.render.engine != "CYCLES" or not scene.cycles.use_denoising:
        return
    try:
        import _cycles
    except ImportError:
        return
    if getattr(_cycles, "with_openimagedenoise", True):
        return
    if scene.cycles.denoiser == "OPENIMAGEDENOISE":
        scene.cycles.use_denoising = False
        warn("this Blender has no OpenImageDenoise: rendering without denoising")


def effective(scene: bpy.types.Scene) -> dict[str, Any]:
    """The settings a frame is rendered with, for the coordinator's `settings_used`."""
    render, image, view = scene.render, scene.render.image_settings, _view_settings(scene)
    samples = None
    if render.engine == "CYCLES":
        samples = scene.cycles.samples
    elif render.engine.startswith("BLENDER_EEVEE") and scene.eevee is not None:
        samples = scene.eevee.taa_render_samples
    return {
        "scene": scene.name,
        "camera": scene.camera.name if scene.camera else None,
        "view_layers": [layer.name for layer in scene.view_layers if layer.use],
        "output_format": image.file_format,
        "color_depth": image.color_depth,
        "color_mode": image.color_mode,
        "exr_codec": image.exr_codec if image.file_format in EXR_FORMATS else None,
        "view_transform": view.view_transform,
        "look": view.look,
        "exposure": round(view.exposure, 6),
        "film_transparent": render.film_transparent,
        "resolution_x": render.resolution_x,
        "resolution_y": render.resolution_y,
        "resolution_percentage": render.resolution_percentage,
        "engine": render.engine,
        "samples": samples,
        "frame_step": scene.frame_step,
        "blender_version": bpy.app.version_string,
        **devices.in_use(scene),
    }


def _names(items: Iterable[Any]) -> str:
    names = sorted(item.name for item in items)[:20]
    return ", ".join(f"'{n}'" for n in names) if names else "none"
