"""build_addon.py: one zip for Blender 3.4 (bl_info) and 4.2+ (extension manifest)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import build_addon

from .conftest import BPY5_VENV, BPY5_PYTHON, require_bpy5


def zip_bl_info(zf: zipfile.ZipFile) -> dict:
    tree = ast.parse(zf.read("brender_addon/__init__.py"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("no bl_info in the zip's __init__.py")


def test_zip_layout(addon_zip):
    assert addon_zip.name == f"brender_addon-{build_addon.version()}.zip"
    with zipfile.ZipFile(addon_zip) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert all(n.startswith("brender_addon/") for n in names)
    for needed in ("__init__.py", "blender_manifest.toml", "client.py", "packing.py", "shot_spec.py",
                   "jobs.py", "operators.py", "panel.py", "preferences.py", "properties.py",
                   "runtime.py", "gather.py",
                   "vendor/blender_asset_tracer/__init__.py",
                   "vendor/blender_asset_tracer/pack/__init__.py",
                   "vendor/blender_asset_tracer/blendfile/__init__.py",
                   "protocol.py", "brender_protocol/__init__.py", "brender_protocol/formats.py",
                   "brender_protocol/shot.py", "brender_protocol/text.py"):
        assert f"brender_addon/{needed}" in names, needed
    assert not any(n.endswith("submit_cli.py") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_the_zip_carries_the_protocol_it_imports(addon_zip, tmp_path):
    """Blender has no brender_protocol of its own: the add-on unpacked alone (no
    site-packages, as in Blender) checks a shot with the copy inside its package."""
    with zipfile.ZipFile(addon_zip) as zf:
        zf.extractall(tmp_path)
        copied = zf.read("brender_addon/brender_protocol/shot.py")
    assert copied == (build_addon.ROOT / "brender_protocol" / "shot.py").read_bytes()
    code = ("import sys, brender_addon.shot_spec as spec\n"
            "print(spec.shot.__name__, 'brender_protocol' in sys.modules)\n"
            "spec.validate(spec.ShotSettings(name='x', frames='-3-3', chunk_size=5000))\n")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["brender_addon.brender_protocol.shot", "False"]


def test_versions_agree_in_the_zip(addon_zip):
    with zipfile.ZipFile(addon_zip) as zf:
        info = zip_bl_info(zf)
        manifest = tomllib.loads(zf.read("brender_addon/blender_manifest.toml").decode())
    assert ".".join(map(str, info["version"])) == manifest["version"] == build_addon.version()
    assert manifest["id"] == "brender_addon"
    assert manifest["type"] == "add-on"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert tuple(info["blender"]) <= (3, 4, 0)
    assert manifest["blender_version_min"] == "4.2.0"


def test_a_second_version_in_the_manifest_stops_the_build(tmp_path):
    """bl_info holds the one version; a manifest that sets its own is refused."""
    copy = tmp_path / "brender_addon"
    shutil.copytree(build_addon.ADDON_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = copy / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('id = "brender_addon"',
                                                     'id = "brender_addon"\nversion = "9.9.9"'))
    with pytest.raises(build_addon.BuildError, match="must not set version"):
        build_addon.build(tmp_path / "out", copy)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_zip_takes_its_version_from_bl_info(tmp_path):
    copy = tmp_path / "brender_addon"
    shutil.copytree(build_addon.ADDON_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "__init__.py"
    init.write_text(init.read_text().replace('"version": (', '"version": (7, 3, 1), "old": ('))
    built = build_addon.build(tmp_path / "out", copy)
    assert built.name == "brender_addon-7.3.1.zip"
    with zipfile.ZipFile(built) as zf:
        manifest = tomllib.loads(zf.read("brender_addon/blender_manifest.toml").decode())
        assert zip_bl_info(zf)["version"] == (7, 3, 1)
    assert manifest["version"] == "7.3.1"


def test_the_build_is_reproducible(tmp_path, addon_zip):
    again = build_addon.build(tmp_path)
    assert again.read_bytes() == addon_zip.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp left behind


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, str(build_addon.ROOT / "build_addon.py"), "--out-dir",
                          str(tmp_path)], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == tmp_path / f"brender_addon-{build_addon.version()}.zip"


def _blender_ext() -> Path:
    found = sorted(BPY5_VENV.glob("lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert found, f"no blender_ext.py in {BPY5_VENV}"
    return found[-1]


def test_blender5_accepts_the_extension_manifest(addon_zip, tmp_path):
    """Blender 5's own extension validator passes the zip, and fails a broken manifest."""
    require_bpy5()
    tool = _blender_ext()
    ok = subprocess.run([str(BPY5_PYTHON), str(tool), "validate", str(addon_zip)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(addon_zip) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("blender_manifest.toml"):
                data = data.replace(b'id = "brender_addon"', b'id = "brender addon!"')
            dst.writestr(item, data)
    bad = subprocess.run([str(BPY5_PYTHON), str(tool), "validate", str(broken)],
                         capture_output=True, text=True)
    assert bad.returncode != 0
