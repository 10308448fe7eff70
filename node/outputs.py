"""Extra outputs of a frame: compositor File Output nodes' files and multiview views.

Two halves share this module. Inside Blender (imported by blender_driver.py, so
no node-side imports at module level): before a frame renders, every File Output
node's base path is pointed at a folder of that frame under the render's output
folder (`outputs/<frame>/<node index>/`), whatever the file says (relative or
absolute), so nothing is written outside the node's folders and each file is known
to belong to its frame; after it renders, the files found there and the views of
a multiview render are listed in `outputs/<frame>/manifest.json`. In the node, the
uploader reads that manifest and sends each file before the frame itself.

Names: a pass is `<File Output node name>/<slot path>` (a multilayer EXR node:
`<node name>/<file name of its base path>`), with ` (<view>)` added when the render
is multiview; a view is its file suffix without the underscore ("R"). A file the
node wrote under a name the slots do not predict keeps its path below the node's
folder. The main frame of a multiview render is its first view.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# Inside Blender, blender_driver.py has loaded brender_protocol/formats.py by its path
# (the farm's packages stay off Blender's sys.path); in the node it is the package's.
FORMATS_MODULE = "brender_formats"
formats = sys.modules.get(FORMATS_MODULE) or importlib.import_module("brender_protocol.formats")
EXTENSIONS = {fmt: f".{ext}" for fmt, ext in formats.STILL_FORMATS.items()}
HASHES = re.compile(r"#+")


@dataclass
class Extra:
    kind: str   # "pass" | "view"
    name: str
    path: Path
    format: str


# -- inside Blender -------------------------------------------------------------

def frame_dir(outdir: str | Path, number: int) -> str:
    return os.path.join(str(outdir), "outputs", str(number))


def file_output_nodes(scene: Any) -> list[tuple[str, Any]]:
    """(name, node) of every File Output node the compositor runs, in node groups too
    (named `<group node>/<node>`); a group used twice is visited once."""
    tree = getattr(scene, "compositing_node_group", None)  # Blender 5
    if tree is None and getattr(scene, "use_nodes", False):
        tree = getattr(scene, "node_tree", None)
    if tree is None or not getattr(scene.render, "use_compositing", True):
        return []
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(tree: Any, prefix: str) -> None:
        for node in tree.nodes:
            if node.mute:
                continue
            if node.bl_idname == "CompositorNodeOutputFile" and node.as_pointer() not in seen:
                seen.add(node.as_pointer())
                found.append((prefix + node.name, node))
            elif node.bl_idname == "CompositorNodeGroup" and node.node_tree is not None:
                walk(node.node_tree, f"{prefix}{node.name}/")

    walk(tree, "")
    return found


def redirect(scene: Any, folder: str) -> list[tuple]:
    """Point every File Output node at `folder/<index>/`; returns what `collect`
    needs to name the files: (node name, its folder, [(slot path, format)], multilayer
    file stem or None) per node."""
    plan = []
    for index, (name, node) in enumerate(file_output_nodes(scene)):
        target = os.path.join(folder, str(index))
        os.makedirs(target, exist_ok=True)
        fmt = node.format.file_format
        if hasattr(node, "base_path"):
            multilayer = fmt == "OPEN_EXR_MULTILAYER"
            stem = os.path.basename(node.base_path.replace("\\", "/")) if multilayer else None
            node.base_path = os.path.join(target, stem) if stem is not None else target + os.sep
            slots = [] if multilayer else [
                (slot.path, fmt if slot.use_node_format else slot.format.file_format)
                for slot in node.file_slots]
        else:  # Blender 5: a directory and a file name; the files' names stay Blender's
            node.directory = target + os.sep
            stem, slots = None, []
        plan.append((name, target, slots, stem))
    return plan


def _views(scene: Any) -> list[str]:
    """File suffixes of the views Blender writes as separate files, first one first."""
    render = scene.render
    if not render.use_multiview or render.image_settings.views_format != "INDIVIDUAL":
        return []
    if render.views_format == "STEREO_3D":
        wanted = [render.views["left"], render.views["right"]]
    else:
        wanted = [v for v in render.views if v.use]
    return [v.file_suffix for v in wanted]


def _numbered(path: str, number: int) -> str:
    """Blender's frame numbering of an output path: the last run of # becomes the
    zero-padded frame; without one, four digits are appended."""
    runs = list(HASHES.finditer(path))
    if not runs:
        return f"{path}{number:04d}" if number >= 0 else f"{path}-{abs(number):03d}"
    last = runs[-1]
    width = last.end() - last.start()
    digits = f"{number:0{width}d}" if number >= 0 else f"-{abs(number):0{width - 1}d}"
    return path[:last.start()] + digits + path[last.end():]


def collect(scene: Any, number: int, base: str, plan: list[tuple], folder: str) -> str:
    """After a frame rendered: write its manifest; returns the main frame's path."""
    ext = scene.render.file_extension
    suffixes = _views(scene)
    extras = []
    main = base + ext
    if suffixes:
        written = [(s, base + s + ext) for s in suffixes if os.path.isfile(base + s + ext)]
        if written:
            main = written[0][1]
            fmt = scene.render.image_settings.file_format
            extras += [{"kind": "view", "name": s.lstrip("_") or s, "path": p, "format": fmt}
                       for s, p in written[1:]]
    for node_name, target, slots, stem in plan:
        extras += _node_files(node_name, target, slots, stem, number, suffixes)
    if extras:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, MANIFEST), "w") as f:
            json.dump(extras, f)
    return main


def _node_files(node_name: str, target: str, slots: list, stem: str | None, number: int,
                suffixes: list[str]) -> list[dict]:
    expected = {}
    view_suffixes = suffixes or [""]
    if stem is not None:
        for suffix in view_suffixes:
            path = _numbered(os.path.join(target, stem), number) + suffix + ".exr"
            expected[os.path.normpath(path)] = (stem, suffix, "OPEN_EXR_MULTILAYER")
    for slot_path, fmt in slots:
        for suffix in view_suffixes:
            path = _numbered(os.path.join(target, slot_path), number) + suffix + \
                EXTENSIONS.get(fmt, "")
            expected[os.path.normpath(path)] = (slot_path, suffix, fmt)
    found = []
    for root, _, files in os.walk(target):
        for file in sorted(files):
            path = os.path.normpath(os.path.join(root, file))
            slot, suffix, fmt = expected.get(path, (None, "", ""))
            if slot is None:
                name, fmt = _unnumbered(os.path.relpath(path, target), number), _format_of(file)
            else:
                name = slot + (f" ({suffix.lstrip('_') or suffix})" if suffixes else "")
            found.append({"kind": "pass", "name": f"{node_name}/{name}", "path": path,
                          "format": fmt})
    return found


def _unnumbered(relative: str, number: int) -> str:
    """A file's path without its extension and frame number: the same name every frame."""
    stem = os.path.splitext(relative)[0]
    runs = [m for m in re.finditer(r"-?\d+", stem) if int(m.group()) == number]
    if not runs:
        return stem
    return stem[:runs[-1].start()] + stem[runs[-1].end():]


def _format_of(file: str) -> str:
    ext = os.path.splitext(file)[1].lower()
    return next((f for f, e in EXTENSIONS.items() if e == ext), "")


# -- in the node ----------------------------------------------------------------

def extras_of(frame_path: Path, number: int) -> list[Extra]:
    """The extra outputs Blender listed for a frame rendered to `frame_path`."""
    manifest = Path(frame_dir(frame_path.parent, number)) / MANIFEST
    try:
        items = json.loads(manifest.read_text())
    except FileNotFoundError:
        return []
    return [Extra(i["kind"], i["name"], Path(i["path"]), i["format"]) for i in items]
