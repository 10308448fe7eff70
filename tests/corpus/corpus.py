"""The dependency corpus against a real farm: build the artist's project once, submit
each shot with `brender-submit` (which packs it with Blender Asset Tracer), and hold
the farm's frame against a plain render of the artist's original file."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.addon.conftest import BPY5_PYTHON, BPY_BLENDER, blender_env, bpy5_available
from tests.farm import BLENDER, REPO, Farm

HERE = Path(__file__).resolve().parent
MAKE_CORPUS = HERE / "make_corpus.py"
MAKE_VDB = HERE / "make_vdb.py"
RENDER_PLAIN = HERE / "render_plain.py"


def run(cmd: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=blender_env(home), capture_output=True, text=True,
                          timeout=timeout, cwd=home)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


def build_corpus(root: Path, *, bpy5: bool) -> dict[str, dict]:
    """Make the project with Blender 3.4 or bpy 5; returns the manifest by case."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    if bpy5_available():
        run([str(BPY5_PYTHON), str(MAKE_VDB), "--",
             str(root / "artist" / "volumes" / "ball.vdb")], home)
    args = ["--", json.dumps({"root": str(root)})]
    if bpy5:
        run([str(BPY5_PYTHON), str(MAKE_CORPUS), *args], home)
    else:
        run([BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
             "--python", str(MAKE_CORPUS), *args], home)
    return json.loads((root / "manifest.json").read_text())


def bpy5_wrapper(where: Path) -> str:
    """An executable `blender` for the node agent, made of bpy 5 (node/bpy_blender.py)."""
    wrapper = where / "blender5"
    wrapper.write_text(f'#!/bin/sh\nexec "{BPY5_PYTHON}" "{BPY_BLENDER}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


def start_farm(root: Path, blender: str) -> Farm:
    farm = Farm(root)
    farm.start_coordinator()
    farm.add_node("node1", blender=blender)
    farm.wait_nodes_online(1, timeout=90)
    return farm


def submit(farm: Farm, blend: Path, frame: int, *extra: str) -> int:
    """`brender-submit FILE --frames N`, as a user runs it; returns the shot id."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "addon"))
    proc = subprocess.run(
        [sys.executable, "-m", "brender_addon.submit_cli", str(blend), "--coordinator", farm.url,
         "--token", farm.token, "--frames", str(frame), "--chunk", "1",
         "--name", blend.stem, *extra], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, f"brender-submit failed: {proc.stderr}"
    return int(proc.stdout.split()[0])


def render_plain(blend: Path, frame: int, out_dir: Path, *, bpy5: bool) -> Path:
    """Plain Blender on the artist's original file: `blender -b FILE -o OUT -f N`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir / "plain_#")
    if bpy5:
        run([str(BPY5_PYTHON), str(RENDER_PLAIN), "--", str(blend), pattern, str(frame)],
            out_dir)
    else:
        run([BLENDER, "-b", "--factory-startup", str(blend), "-o", pattern, "-f", str(frame)],
            out_dir)
    return out_dir / f"plain_{frame}.png"


def farm_frame(farm: Farm, shot_id: int, frame: int, out: Path) -> Path:
    shot = farm.wait_shot(shot_id, timeout=240)
    assert shot["status"] == "completed", farm.debug_dump(shot_id)
    frames = {f["number"]: f for f in farm.client().frames(shot_id)}
    out.write_bytes(farm.client().download_url(frames[frame]["image_url"]))
    return out


def packed_paths(farm: Farm, shot_id: int) -> list[str]:
    return [f["path"] for f in farm.client().shot(shot_id)["files"]]


# Where the packer must put some files (paths inside the uploaded tree): an absolute
# path inside the project keeps its place, like the relative ones.
PLACED = {
    "texture paths é": ["textures/abs.png", "textures/café été/tuile ø 1.png"],
}


def submit_all(farm: Farm, corpus: dict) -> dict[str, int]:
    """Every case's shot at once, so the node renders while the tests render their
    references: {case name: shot id}."""
    return {name: submit(farm, Path(case["blend"]), case["frame"])
            for name, case in corpus.items()}


def check_case(name: str, case: dict, farm: Farm, shot_id: int, workdir: Path,
               *, bpy5: bool) -> None:
    """The shot carried the case's files and its frame is plain Blender's, pixel for pixel."""
    plain = render_plain(Path(case["blend"]), case["frame"], workdir / "plain", bpy5=bpy5)
    rendered = farm_frame(farm, shot_id, case["frame"], workdir / "farm.png")
    paths = packed_paths(farm, shot_id)
    names = {p.rsplit("/", 1)[-1] for p in paths}
    assert set(case["deps"]) <= names, f"not packed: {set(case['deps']) - names}"
    assert set(PLACED.get(name, [])) <= set(paths), paths
    assert_identical(rendered, plain)


def assert_identical(farm_png: Path, plain_png: Path) -> None:
    """Same size, same mode, every pixel equal, alpha included."""
    with Image.open(farm_png) as a, Image.open(plain_png) as b:
        assert (a.size, a.mode) == (b.size, b.mode), \
            f"farm {a.size} {a.mode} vs plain {b.size} {b.mode}"
        pa, pb = a.convert("RGBA"), b.convert("RGBA")
        if pa.tobytes() == pb.tobytes():
            return
        differing = int((np.asarray(pa) != np.asarray(pb)).any(axis=2).sum())
        raise AssertionError(f"{differing} of {a.width * a.height} pixels differ between the "
                             f"farm's frame {farm_png} and plain Blender's {plain_png}")
