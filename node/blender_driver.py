"""Runs inside Blender (`--python`): renders frames on request, keeping the file loaded.

Started as `blender -b FILE --python blender_driver.py -- --outdir D --render JSON ...`
(`--gpus 0,1`: the node's GPU selection; the render JSON's `device` says cpu, gpu, any).
With `--frames 1,2,3` it renders those frames and exits (one process per chunk).
With `--serve` it stays up, reading one JSON request per line from stdin
(`{"frames": [..]}` or `{"quit": true}`), so Blender starts once per shot, not
once per frame. Started without a FILE it is a spare: Blender is up before the shot
arrives, and `{"open": FILE, "render": {...}}` loads the shot's file (its scripts never
run: spares serve only shots that do not allow them).

Every way in goes through blender_settings.prepare once the file is loaded, so all three
render the same file with the same settings. Every line meant for the node starts with
BRENDER_: READY, SETTINGS (the effective settings), FRAME (a frame is written), DONE,
FAILED (a reason that is the shot's, e.g. a bad override), ERROR, WARNING.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from types import ModuleType
from typing import Any

import bpy


HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str, path: str) -> ModuleType:
    """A module of the farm's by its path, under a name of its own: the node's folder
    stays off sys.path, so its modules never shadow those a shot's scripts import."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# brender_protocol sits beside node/, in a checkout as in an installed package.
formats = _load("brender_formats", os.path.join(HERE, os.pardir, "brender_protocol",
                                                "formats.py"))
outputs = _load("brender_outputs", os.path.join(HERE, "outputs.py"))
blender_devices = _load("brender_blender_devices", os.path.join(HERE, "blender_devices.py"))
blender_settings = _load("brender_blender_settings", os.path.join(HERE, "blender_settings.py"))


def emit(kind: str, **data: Any) -> None:
    print(f"BRENDER_{kind} {json.dumps(data)}", flush=True)


def warn(message: str) -> None:
    emit("WARNING", message=message)


GPUS: list[int] | None = None  # the node's --gpus (None: every GPU)


def prepare(render: dict) -> bpy.types.Scene:
    """Make the loaded file ready; report what it will render with."""
    scene = blender_settings.prepare(render, warn, GPUS)
    emit("SETTINGS", **blender_settings.effective(scene))
    emit("READY", blender=bpy.app.version_string, file=bpy.data.filepath)
    return scene


def render_frame(scene: bpy.types.Scene | None, number: int, outdir: str) -> None:
    if scene is None:
        raise RuntimeError("a spare Blender renders once it has opened a file")
    base = os.path.join(outdir, formats.frame_stem(number))
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
    # The frame is written: the node uploads it from here.
    emit("FRAME", frame=number, path=path, seconds=round(seconds, 4),
         format=scene.render.image_settings.file_format)


def open_file(request: dict) -> bpy.types.Scene:
    if bpy.data.filepath:
        raise RuntimeError("only a spare Blender (started without a file) opens one")
    # With its UI, as `blender -b FILE` loads it: the file's window picks its active scene.
    bpy.ops.wm.open_mainfile(filepath=request["open"], load_ui=True, use_scripts=False)
    return prepare(request.get("render") or {})


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="blender_driver")
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--render", type=json.loads, default={})
    parser.add_argument("--frames", default="")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--gpus", default=None, help="GPU indices, e.g. 0,1 (default: all)")
    args = parser.parse_args(argv)
    global GPUS
    if args.gpus is not None:
        GPUS = [int(i) for i in args.gpus.split(",") if i.strip()]
    scene: bpy.types.Scene | None = None
    if bpy.data.filepath:
        scene = prepare(args.render)
    else:  # a spare: nothing to prepare until a file is opened
        emit("READY", blender=bpy.app.version_string, file="")
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
except blender_settings.BadOverride as exc:
    emit("FAILED", reason=str(exc))
    sys.exit(1)
except Exception as exc:  # report, then let --python-exit-code turn it into a failure
    emit("ERROR", error=f"{type(exc).__name__}: {exc}")
    raise
