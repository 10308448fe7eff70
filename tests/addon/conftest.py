"""Fixtures for the add-on tests: the built zip, scenes made by real Blender,
a way to drive the add-on inside Blender 3.4 (Debian's binary) or Blender 5
(PyPI's bpy in its own venv, see .ci/setup_addon.sh)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import build_addon
from tests.farm import BLENDER, REPO

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "blender_scripts"
MAKE_SCENE = SCRIPTS / "make_scene.py"
DRIVER = SCRIPTS / "addon_driver.py"
# The node's own `blender` command made of bpy (node/bpy_blender.py), for wrappers a
# test hands a node as its Blender.
BPY_BLENDER = REPO / "node" / "bpy_blender.py"
BPY5_VENV = Path(os.environ.get("BRENDER_BPY5_VENV", "/opt/brender-bpy5"))
BPY5_PYTHON = BPY5_VENV / "bin" / "python"
IN_CI = bool(os.environ.get("CI"))


def bpy5_available() -> bool:
    return BPY5_PYTHON.exists()


def require_bpy5() -> None:
    """Skip without the bpy 5 venv on a developer's machine; in CI it must be there."""
    if bpy5_available():
        return
    if IN_CI:
        pytest.fail(f"{BPY5_PYTHON} is missing: .ci/setup_addon.sh should have made it")
    pytest.skip(f"no bpy 5 venv at {BPY5_VENV} (run bash .ci/setup_addon.sh)")


def blender_env(home: Path) -> dict[str, str]:
    """Environment keeping Blender's user config, scripts and extensions in `home`."""
    env = dict(os.environ)
    for var, sub in (("BLENDER_USER_CONFIG", "config"), ("BLENDER_USER_SCRIPTS", "scripts"),
                     ("BLENDER_USER_DATAFILES", "datafiles"), ("BLENDER_USER_EXTENSIONS", "extensions"),
                     ("BLENDER_USER_RESOURCES", "resources")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["HOME"] = str(home)
    env.pop("PYTHONPATH", None)
    return env


def run_script(script: Path, args: list[str], home: Path, *, bpy5: bool = False,
               timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `script` in Blender 3.4 (`blender -b`) or in the bpy 5 venv's Python."""
    if bpy5:
        cmd = [str(BPY5_PYTHON), str(script), "--", *args]
    else:
        cmd = [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
               "--python", str(script), "--", *args]
    proc = subprocess.run(cmd, env=blender_env(home), capture_output=True, text=True,
                          timeout=timeout, cwd=home)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def make_project(root: Path, home: Path, *, bpy5: bool = False, **opts) -> dict[str, Path]:
    run_script(MAKE_SCENE, [json.dumps(dict(opts, root=str(root)))], home, bpy5=bpy5)
    return {
        "root": root,
        "blend": root / "project" / "shot.blend",
        "texture": root / "project" / "textures" / "checker.png",
        "library": root / "assets" / "library.blend",
        "library_texture": root / "assets" / "tex" / "red.png",
    }


def drive(plan: dict, home: Path, *, bpy5: bool = False, timeout: float = 240) -> dict:
    """Run addon_driver.py with `plan`; return its results (one dict per step)."""
    home.mkdir(parents=True, exist_ok=True)
    out = home / "driver-out.json"
    plan = dict(plan, out=str(out))
    plan_path = home / "plan.json"
    plan_path.write_text(json.dumps(plan))
    proc = run_script(DRIVER, [str(plan_path)], home, bpy5=bpy5, timeout=timeout)
    results = json.loads(out.read_text())
    results["stdout"] = proc.stdout
    return results


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> dict[str, Path]:
    """The shot with an external texture and a linked library, made by Blender 3.4."""
    root = tmp_path_factory.mktemp("project34")
    return make_project(root / "p", root / "home")


@pytest.fixture(scope="session")
def project_missing(tmp_path_factory) -> dict[str, Path]:
    """Like `project`, plus an image whose file does not exist."""
    root = tmp_path_factory.mktemp("project34-missing")
    return make_project(root / "p", root / "home", missing=True)


@pytest.fixture(scope="session")
def project_extras(tmp_path_factory) -> dict[str, Path]:
    """Like `project`, plus an image sequence, a sound, a font by absolute path
    and a particle disk cache."""
    root = tmp_path_factory.mktemp("project34-extras")
    return make_project(root / "p", root / "home", extras=True)


def mean_abs_diff(a: Path, b: Path) -> float:
    """Mean absolute difference of two images' RGB, in 0..255."""
    import numpy as np
    from PIL import Image
    ia = np.asarray(Image.open(a).convert("RGB"), dtype=np.float64)
    ib = np.asarray(Image.open(b).convert("RGB"), dtype=np.float64)
    assert ia.shape == ib.shape, f"{a} is {ia.shape}, {b} is {ib.shape}"
    return float(np.abs(ia - ib).mean())


def colour_fractions(path: Path) -> dict[str, float]:
    """How much of the image is the checker's green and blue, the cube's red, and
    missing-texture magenta (see make_scene.py)."""
    import numpy as np
    from PIL import Image
    px = np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    total = r.size
    return {
        "red": float(((r > 150) & (g < 90) & (b < 90)).sum()) / total,
        "green": float(((g > 150) & (r < 120) & (b < 120)).sum()) / total,
        "blue": float(((b > 150) & (r < 120) & (g < 150)).sum()) / total,
        # Blender paints missing textures pure magenta; edges between the red cube
        # and blue squares blend to purples, hence the strict bounds.
        "magenta": float(((r > 200) & (b > 200) & (g < 60)).sum()) / total,
    }


def render_local(blend: Path, frame: int, out: Path, home: Path, *, bpy5: bool = False) -> Path:
    """Render one frame of `blend` on this machine, as the reference image."""
    run_script(SCRIPTS / "render_frame.py",
               [json.dumps({"blend": str(blend), "frame": frame, "out": str(out)})], home, bpy5=bpy5)
    return out
