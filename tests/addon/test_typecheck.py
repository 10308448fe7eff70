"""mypy over the add-on, with fake-bpy-module's stubs standing in for Blender."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import build_addon

FLAGS = ["--python-version", "3.11", "--no-incremental", "--cache-dir", "/dev/null",
         "--warn-unused-ignores", "--disallow-untyped-defs", "--check-untyped-defs",
         "--warn-redundant-casts", "--no-implicit-optional", "--show-error-codes",
         "--exclude", r"submit_cli\.py$"]     # brender-submit's CLI is not part of the add-on


def mypy(*targets: str | Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy", reason="mypy is in the project's test extras")
    return subprocess.run([sys.executable, "-m", "mypy", *FLAGS, *map(str, targets)],
                          capture_output=True, text=True, cwd=build_addon.ROOT, timeout=300)


def test_fake_bpy_stubs_are_installed():
    from importlib import metadata
    files = metadata.distribution("fake-bpy-module-latest").files or []
    assert any(str(f).startswith("bpy-stubs/") for f in files)


def test_bpy_free_modules_import_without_bpy():
    """client, packing, shot_spec and jobs are the bpy-free half (brender-submit uses them)."""
    code = ("import sys\n"
            "import brender_addon, brender_addon.client, brender_addon.packing, "
            "brender_addon.shot_spec, brender_addon.jobs\n"
            "assert 'bpy' not in sys.modules, 'bpy was imported'\n"
            "try:\n    import bpy\nexcept ImportError:\n    print('no bpy')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=build_addon.ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no bpy"


def test_the_addon_type_checks():
    proc = mypy(build_addon.ADDON_DIR, build_addon.ROOT / "build_addon.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_the_check_catches_bpy_misuse(tmp_path):
    """The same flags reject wrong bpy calls, so a green run means something."""
    bad = tmp_path / "bad_addon.py"
    bad.write_text(
        "import bpy\n\n\n"
        "def register() -> None:\n"
        "    bpy.utils.register_clas(bpy.types.Operator)\n"
        "    bpy.app.timers.register(42)\n")
    proc = mypy(bad)
    assert proc.returncode == 1, proc.stdout
    assert "register_clas" in proc.stdout
    assert "timers" in proc.stdout or "arg-type" in proc.stdout
