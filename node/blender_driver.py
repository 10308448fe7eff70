"""Runs inside Blender (`--python`): renders frames on request, keeping the file loaded.

Started as `blender -b FILE --python blender_driver.py -- --outdir D --format F ...`.
With `--frames 1,2,3` it renders those frames and exits (one process per chunk).
With `--serve` it stays up, reading one JSON request per line from stdin
(`{"frames": [..]}` or `{"quit": true}`), so Blender starts once per shot, not
once per frame. Started without a FILE it is a spare: Blender is up before the shot
arrives, and `{"open": FILE, "format": F, "resolution": R}` loads the shot's file
(its scripts never run: spares serve only shots that do not allow them). Every line
meant for the node starts with BRENDER_.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import bpy


def _load_outputs():
    """node/outputs.py, under a name of its own (the node's folder is not on sys.path)."""
    spec = importlib.util.spec_from_file_location(
        "brender_outputs", os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


outputs = _load_outputs()

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "OPEN_EXR": "OPEN_EXR",
           "OPEN_EXR_MULTILAYER": "OPEN_EXR_MULTILAYER"}


def emit(kind, **data):
    print(f"BRENDER_{kind} {json.dumps(data)}", flush=True)


def configure(output_format, resolution):
    scene = bpy.context.scene
    render = scene.render
    render.use_file_extension = True
    render.image_settings.file_format = FORMATS[output_format]
    if output_format in ("OPEN_EXR", "OPEN_EXR_MULTILAYER"):
        render.image_settings.color_depth = "16"
        render.image_settings.exr_codec = "ZIP"
    elif output_format == "PNG":
        render.image_settings.color_mode = "RGBA" if render.film_transparent else "RGB"
    if resolution:
        render.resolution_percentage = resolution
    # The farm renders stills into its own folder; never a movie container.
    render.use_overwrite = True
    render.use_placeholder = False
    disable_missing_denoiser(scene)
    return scene


def disable_missing_denoiser(scene):
    """A Blender built without OpenImageDenoise fails every denoised frame: render
    without it and say so, rather than fail the shot on this node."""
    if scene.render.engine != "CYCLES":
        return
    try:
        import _cycles
        has_oidn = bool(getattr(_cycles, "with_openimagedenoise", True))
    except ImportError:
        return
    if has_oidn or not scene.cycles.use_denoising:
        return
    if scene.cycles.denoiser == "OPENIMAGEDENOISE":
        scene.cycles.use_denoising = False
        emit("WARNING", message="this Blender has no OpenImageDenoise: rendering without denoising")


def render_frame(scene, number, outdir):
    base = os.path.join(outdir, f"frame_{'-' if number < 0 else ''}{abs(number):06d}")
    scene.render.filepath = base
    scene.frame_set(number)
    extras_dir = outputs.frame_dir(outdir, number)
    plan = outputs.redirect(scene, extras_dir)
    started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds = time.perf_counter() - started
    path = outputs.collect(scene, number, base, plan, extras_dir)
    if not os.path.isfile(path):
        raise RuntimeError(f"Blender wrote no file for frame {number} ({path})")
    emit("FRAME", frame=number, path=path, seconds=round(seconds, 4))


def open_file(request):
    if bpy.data.filepath:
        raise RuntimeError("only a spare Blender (started without a file) opens one")
    bpy.ops.wm.open_mainfile(filepath=request["open"], load_ui=False, use_scripts=False)
    scene = configure(request.get("format", "PNG"), int(request.get("resolution") or 0))
    emit("READY", blender=bpy.app.version_string, file=bpy.data.filepath)
    return scene


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender_driver")
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--format", default="PNG", choices=sorted(FORMATS))
    parser.add_argument("--resolution", type=int, default=0)
    parser.add_argument("--frames", default="")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args(argv)
    scene = configure(args.format, args.resolution)
    emit("READY", blender=bpy.app.version_string, file=bpy.data.filepath)
    if not args.serve:
        for number in (int(x) for x in args.frames.split(",") if x.strip()):
            render_frame(scene, number, args.outdir)
        emit("DONE")
        return
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        if "open" in request:
            scene = open_file(request)
            continue
        for number in request["frames"]:
            render_frame(scene, number, request.get("outdir", args.outdir))
        emit("DONE")


try:
    main()
except Exception as exc:  # report, then let --python-exit-code turn it into a failure
    emit("ERROR", error=f"{type(exc).__name__}: {exc}")
    raise
