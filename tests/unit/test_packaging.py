"""Packaging: one version everywhere it shows, and the add-on zip served from an
installed package (no repo-root build_addon.py), built inside the data dir."""
from __future__ import annotations

import ast
import io
import os
import shutil
import subprocess
import sys
import time
import tomllib
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import coordinator
import node
from coordinator import addon_zip, keys
from coordinator.app import create_app
from coordinator.config import Config

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t0ken"
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache"}


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    app = create_app(Config(data_dir=tmp_path / "data"), TOKEN)
    return await aiohttp_client(app)


def bl_info_version() -> str:
    """bl_info["version"] as Blender reads it: a literal in the source text."""
    tree = ast.parse((ROOT / "addon" / "brender_addon" / "__init__.py").read_text())
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in stmt.targets):
            return ".".join(map(str, ast.literal_eval(stmt.value)["version"]))
    raise AssertionError("no bl_info")


def wheel_version() -> str:
    """The version a build of this checkout writes into the package metadata."""
    from setuptools.config.pyprojecttoml import read_configuration
    with warnings.catch_warnings():   # "[tool.setuptools] support is beta"
        warnings.simplefilter("ignore")
        return read_configuration(ROOT / "pyproject.toml", expand=True)["project"]["version"]


def zip_versions(data: bytes) -> tuple[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        tree = ast.parse(zf.read("brender_addon/__init__.py"))
        manifest = tomllib.loads(zf.read("brender_addon/blender_manifest.toml").decode())
    info = next(ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign)
                and any(getattr(t, "id", "") == "bl_info" for t in s.targets))
    return ".".join(map(str, info["version"])), manifest["version"]


def files_under(top: Path, skip: Path | None = None) -> dict[str, float]:
    out = {}
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and Path(dirpath, d) != skip]
        for name in files:
            path = Path(dirpath, name)
            out[str(path)] = path.stat().st_mtime
    return out


async def test_the_version_is_the_same_everywhere(api):
    version = bl_info_version()
    assert wheel_version() == version
    assert metadata.version("brender") == version, "the installed metadata is stale: pip install -e ."
    assert coordinator.__version__ == node.__version__ == version
    assert (await (await api.get("/api/version")).json())["version"] == version
    assert (await (await api.get("/api/openapi.json")).json())["info"]["version"] == version
    farm = await api.get("/api/farm", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (await farm.json())["version"] == version
    for cli in ("coordinator.cli", "node.cli"):
        out = subprocess.run([sys.executable, "-m", cli, "--version"], capture_output=True,
                             text=True, cwd=ROOT, check=True)
        assert out.stdout.strip() == version, cli
    zipped = await api.get("/addon/brender_addon.zip")
    assert zipped.status == 200
    assert zip_versions(await zipped.read()) == (version, version)


async def test_the_addon_zip_is_built_from_the_installed_package_inside_the_data_dir(
        api, tmp_path, monkeypatch):
    # The add-on as a wheel installs it: the package alone, no checkout around it.
    installed = tmp_path / "site-packages" / "brender_addon"
    shutil.copytree(ROOT / "addon" / "brender_addon", installed,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(addon_zip, "ADDON_DIR", installed)
    monkeypatch.setitem(sys.modules, "build_addon", None)   # `import build_addon` fails
    data_dir = api.server.app[keys.CONFIG].data_dir
    repo_before, tmp_before = files_under(ROOT), files_under(tmp_path, skip=data_dir)

    resp = await api.get("/addon/brender_addon.zip")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/zip"
    version = bl_info_version()
    assert f'filename="brender_addon-{version}.zip"' in resp.headers["Content-Disposition"]
    body = await resp.read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = set(zf.namelist())
        assert zf.read("brender_addon/packing.py") == (installed / "packing.py").read_bytes()
    assert "brender_addon/vendor/blender_asset_tracer/pack/__init__.py" in names
    assert "brender_addon/submit_cli.py" not in names
    assert zip_versions(body) == (version, version)

    assert files_under(ROOT) == repo_before, "the coordinator wrote into the checkout"
    assert files_under(tmp_path, skip=data_dir) == tmp_before
    built = data_dir / "addon" / f"brender_addon-{version}.zip"
    assert built.read_bytes() == body
    assert [p.name for p in built.parent.iterdir()] == [built.name]

    # Unchanged sources: the same file, not built again.
    mtime = built.stat().st_mtime_ns
    assert await (await api.get("/addon/brender_addon.zip")).read() == body
    assert built.stat().st_mtime_ns == mtime

    # A changed source (an editable install): the next download carries it.
    (installed / "gather.py").write_text((installed / "gather.py").read_text() + "\n# changed\n")
    later = time.time() + 5
    os.utime(installed / "gather.py", (later, later))
    again = await (await api.get("/addon/brender_addon.zip")).read()
    with zipfile.ZipFile(io.BytesIO(again)) as zf:
        assert zf.read("brender_addon/gather.py").endswith(b"# changed\n")


async def test_without_blender_asset_tracer_the_zip_is_a_clear_404(api, monkeypatch):
    monkeypatch.setitem(sys.modules, "blender_asset_tracer", None)
    resp = await api.get("/addon/brender_addon.zip")
    assert resp.status == 404
    assert "add-on zip is not available" in (await resp.json())["error"]
    assert not (api.server.app[keys.CONFIG].data_dir / "addon").exists() or \
        not list((api.server.app[keys.CONFIG].data_dir / "addon").glob("*.zip"))
