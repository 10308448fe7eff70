"""Brender: submit the current shot to a Brender render farm from Blender.

This file only holds `bl_info` and register/unregister: the modules that need
`bpy` are imported inside `register()`, so `brender_addon.client`, `.packing`,
`.shot_spec` and `.jobs` import in plain Python (the `brender-submit` CLI uses
them). Works as a legacy add-on (Blender 3.4+, `bl_info`) and as an extension
(Blender 4.2+, `blender_manifest.toml`, same version).

`bl_info["version"]` is the project's one version string: Blender needs it there
as a literal; the package metadata, the coordinator, the node and the zip's
manifest all take it from here.
"""
from __future__ import annotations

from typing import Any

bl_info = {
    "name": "Brender",
    "author": "Brender",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Output > Brender",
    "description": "Submit the current shot to a Brender render farm and watch it render",
    "category": "Render",
}

__version__ = ".".join(str(part) for part in bl_info["version"])

_registered: list[Any] = []


def register() -> None:
    from . import operators, panel, preferences, properties, reports, runtime

    for module in (runtime, preferences, properties, operators, reports, panel):
        module.register()
        _registered.append(module)


def unregister() -> None:
    while _registered:
        _registered.pop().unregister()
