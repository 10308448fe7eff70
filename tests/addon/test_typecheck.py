"""mypy over the add-on, with fake-bpy-module's stubs standing in for Blender."""
from __future__ import annotations

import re
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


BAD_ADDON = (
    "import bpy\n\n\n"
    "def register() -> None:\n"
    "    bpy.utils.register_clas(bpy.types.Operator)\n"
    "    bpy.app.timers.register(42)\n")


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """One mypy run (the bpy stubs are big): the add-on, build_addon.py, and a
    deliberately wrong add-on file that must be caught."""
    bad = tmp_path_factory.mktemp("mypy") / "bad_addon.py"
    bad.write_text(BAD_ADDON)
    return mypy(build_addon.ADDON_DIR, build_addon.ROOT / "build_addon.py", bad)


def test_the_addon_type_checks(mypy_run):
    errors = [line for line in mypy_run.stdout.splitlines() if ": error:" in line]
    ours = [line for line in errors if "bad_addon.py" not in line]
    assert ours == [], mypy_run.stdout + mypy_run.stderr
    checked = re.search(r"checked (\d+) source files", mypy_run.stdout)
    assert checked and int(checked.group(1)) >= 13, mypy_run.stdout   # every add-on module


def test_the_check_catches_bpy_misuse(mypy_run):
    """The same flags reject wrong bpy calls, so a clean add-on means something."""
    assert mypy_run.returncode == 1, mypy_run.stdout + mypy_run.stderr
    errors = [line for line in mypy_run.stdout.splitlines() if "bad_addon.py" in line]
    assert any("register_clas" in line for line in errors), mypy_run.stdout
    assert any("timers" in line or "arg-type" in line for line in errors), mypy_run.stdout


def test_every_package_type_checks():
    """pyproject's [tool.mypy] (every package: protocol, coordinator, node, add-on) has
    no errors; a new one fails CI here."""
    pytest.importorskip("mypy", reason="mypy is in the project's test extras")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                           "--cache-dir", "/dev/null"],
                          capture_output=True, text=True, cwd=build_addon.ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert re.search(r"Success: no issues found in \d+ source files", proc.stdout)
