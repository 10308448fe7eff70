"""Runs inside Blender: which Cycles devices it has, and setting a scene up to render on
the ones a shot asks for. Loaded by path (blender_probe.py at the node's start,
blender_settings.py for every file), so detection and rendering pick the same GPUs.

A node's `--gpus 0,1` selects GPUs by their index within each compute device type
(the first CUDA card is CUDA 0), as CUDA_VISIBLE_DEVICES numbers them, so one node per
GPU can run on a box. Cycles' API is the same from 3.0 to 5.0 for what is used here:
the add-on's preferences, `get_devices_for_type` (which also refreshes the device
entries) and each entry's `id`, `name`, `type` and `use`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import bpy

# Cycles' GPU device types, in the order a node prefers them (OptiX over CUDA for the
# same NVIDIA card); a scene renders with one type at a time.
GPU_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
Warn = Callable[[str], None]


class NoGPU(Exception):
    """A shot asked for a GPU and this Blender sees none of the node's."""


def cycles_preferences() -> Any:
    preferences = bpy.context.preferences
    addon = preferences.addons.get("cycles") if preferences is not None else None
    return addon.preferences if addon is not None else None


def gpus_of_type(prefs: Any, kind: str, selection: Sequence[int] | None,
                 warn: Warn) -> list[Any]:
    """The device entries of one GPU type this node renders with; a type whose drivers
    fail to load has none (and never stops the others)."""
    try:
        entries = [d for d in prefs.get_devices_for_type(kind) if d.type == kind]
    except Exception as exc:  # a broken driver, a type this build does not know
        warn(f"Cycles {kind} devices could not be listed: {type(exc).__name__}: {exc}")
        return []
    if selection is None:
        return entries
    return [entries[i] for i in selection if 0 <= i < len(entries)]


def cpu_name(prefs: Any) -> str:
    try:
        for entry in prefs.get_devices_for_type("CPU"):
            if entry.type == "CPU":
                return str(entry.name)
    except Exception:
        pass
    return "CPU"


def detect(selection: Sequence[int] | None, warn: Warn) -> list[dict]:
    """The CPU and the selected GPUs of every type, as the node's hello reports them."""
    prefs = cycles_preferences()
    if prefs is None:
        warn("the Cycles add-on is not enabled: CPU only")
        return [{"type": "CPU", "name": "CPU", "id": "CPU"}]
    devices = [{"type": "CPU", "name": cpu_name(prefs), "id": "CPU"}]
    for kind in GPU_TYPES:
        devices += [{"type": kind, "name": str(d.name), "id": str(d.id)}
                    for d in gpus_of_type(prefs, kind, selection, warn)]
    return devices


def configure(scene: Any, device: str | None, selection: Sequence[int] | None,
              warn: Warn) -> None:
    """Set `scene` up to render on `device` (cpu, gpu, any; None: the file's own
    setting, on the node's GPUs when the file asks for the GPU)."""
    if scene.render.engine != "CYCLES":
        return  # Eevee and Workbench render with the GPU OpenGL gives them
    prefs = cycles_preferences()
    wants_gpu = device in ("gpu", "any") or (device is None and scene.cycles.device == "GPU")
    kind, gpus = "", []
    if wants_gpu and prefs is not None:
        for kind in GPU_TYPES:
            gpus = gpus_of_type(prefs, kind, selection, warn)
            if gpus:
                break
    if wants_gpu and gpus:
        prefs.compute_device_type = kind
        chosen = {d.id for d in gpus}
        for entry in prefs.devices:
            entry.use = entry.id in chosen  # the CPU too: "gpu" means the GPUs alone
        scene.cycles.device = "GPU"
        return
    if device == "gpu":
        raise NoGPU("device gpu: this Blender sees no GPU of this node's "
                    "(Cycles found no CUDA, OptiX, HIP, oneAPI or Metal device)")
    if device is not None:
        scene.cycles.device = "CPU"
    elif wants_gpu:
        # As `blender -b FILE` does on a machine without a GPU: Cycles falls back to it.
        warn("the file renders on the GPU and this node has none: rendering on the CPU")
    if prefs is not None:
        prefs.compute_device_type = "NONE"


def in_use(scene: Any) -> dict:
    """What Cycles renders `scene` on, read back from the scene and the preferences,
    for the node's settings report (`device` None: not Cycles)."""
    if scene.render.engine != "CYCLES":
        return {"device": None, "devices": []}
    prefs = cycles_preferences()
    if scene.cycles.device == "GPU" and prefs is not None:
        kind = prefs.compute_device_type
        used = [str(d.name) for d in prefs.devices if d.use and d.type == kind]
        if kind in GPU_TYPES and used:
            return {"device": kind, "devices": used}
    # Cycles' own fallback: a GPU scene with no GPU selected renders on the CPU.
    return {"device": "CPU", "devices": [cpu_name(prefs) if prefs is not None else "CPU"]}
