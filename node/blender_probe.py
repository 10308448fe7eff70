"""Runs inside Blender once, when the node starts: its version and Cycles devices.

    blender -b --factory-startup --python-exit-code 1 --python blender_probe.py -- [--gpus 0,1]

Prints one line, `BRENDER_PROBE {"version": ..., "devices": [...], "warnings": [...]}`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    selection = None
    if "--gpus" in argv:
        text = argv[argv.index("--gpus") + 1]
        selection = [int(i) for i in text.split(",") if i.strip()]
    # By path, under a name of its own, as blender_driver.py loads it.
    spec = importlib.util.spec_from_file_location("brender_blender_devices",
                                                  os.path.join(HERE, "blender_devices.py"))
    assert spec is not None and spec.loader is not None
    devices = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(devices)
    warnings: list[str] = []
    found = devices.detect(selection, warnings.append)
    print("BRENDER_PROBE " + json.dumps({"version": bpy.app.version_string, "devices": found,
                                         "warnings": warnings}), flush=True)


main()
