"""The Blender add-on zip: `brender_addon-<version>.zip`.

The zip holds one folder, `brender_addon/`, with the add-on's modules, its
`blender_manifest.toml` (Blender 4.2+ extension) next to `bl_info` in
`__init__.py` (legacy add-on, Blender 3.4+), and a copy of Blender Asset Tracer
in `brender_addon/vendor/` because Blender's Python does not ship it, and the
farm's wire rules (`brender_protocol`) in `brender_addon/brender_protocol/`:
Blender installs one top-level package per add-on, so the add-on imports its copy
(brender_addon/protocol.py). `submit_cli.py` (the `brender-submit` command) stays out.

The add-on's sources are found where `brender_addon` is installed (a wheel or a
checkout), so the coordinator serves the zip from any install. The version is
`bl_info["version"]`, the project's one version: the manifest in the sources has
none, the build writes it into the zip's copy.
"""
from __future__ import annotations

import ast
import os
import re
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import brender_addon
import brender_protocol

ADDON_DIR = Path(brender_addon.__file__).resolve().parent
PROTOCOL_DIR = Path(brender_protocol.__file__).resolve().parent
PROTOCOL = "brender_protocol"
PACKAGE = "brender_addon"
MANIFEST = "blender_manifest.toml"
EXCLUDE_FILES = {"submit_cli.py"}
EXCLUDE_DIRS = {"__pycache__", "vendor", PROTOCOL}
# A fixed timestamp keeps the zip's bytes the same for the same sources.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
VERSION_LINE = re.compile(r"^version\s*=", re.MULTILINE)
ID_LINE = re.compile(r"^id\s*=.*$", re.MULTILINE)


class BuildError(Exception):
    pass


def version(addon_dir: Path | None = None) -> str:
    """`bl_info["version"]` of the add-on's `__init__.py`, as "0.1.0".

    Read from the source text, as Blender reads it (a literal, never imported)."""
    init = (addon_dir or ADDON_DIR) / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "bl_info" for t in targets):
            info = ast.literal_eval(value)
            return ".".join(str(part) for part in info["version"])
    raise BuildError(f"no bl_info in {init}")


def manifest_text(addon_dir: Path | None = None) -> str:
    """The zip's `blender_manifest.toml`: the source's, with `version` from bl_info."""
    addon_dir = addon_dir or ADDON_DIR
    text = (addon_dir / MANIFEST).read_text(encoding="utf-8")
    if VERSION_LINE.search(text):
        raise BuildError(f"{MANIFEST} must not set version: the build writes bl_info's "
                         f"version ({version(addon_dir)}) into it")
    id_line = ID_LINE.search(text)
    if id_line is None:
        raise BuildError(f"no id in {MANIFEST}")
    at = id_line.end()
    return f'{text[:at]}\nversion = "{version(addon_dir)}"{text[at:]}'


def _bat_dir() -> tuple[Path, Path | None]:
    """Where the installed blender_asset_tracer package (and its licence) are."""
    try:
        import blender_asset_tracer
    except ImportError:
        raise BuildError("blender-asset-tracer is not installed: "
                         "pip install 'brender[coordinator]'") from None
    pkg = Path(blender_asset_tracer.__file__).resolve().parent
    try:
        dist = metadata.distribution("blender-asset-tracer")
    except metadata.PackageNotFoundError:
        return pkg, None
    for f in dist.files or []:
        if Path(str(f)).name.upper().startswith(("LICENSE", "COPYING")):
            return pkg, Path(str(dist.locate_file(f)))
    return pkg, None


def _walk(top: Path, exclude_files: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    out = []
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDE_DIRS)
        for name in sorted(files):
            if name in exclude_files or name.endswith((".pyc", ".pyo")):
                continue
            out.append(Path(dirpath) / name)
    return out


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build(out_dir: Path, addon_dir: Path | None = None) -> Path:
    """Write `<out_dir>/brender_addon-<version>.zip` atomically; return its path."""
    addon_dir = addon_dir or ADDON_DIR
    out_dir = Path(out_dir)
    manifest = manifest_text(addon_dir).encode()
    bat_pkg, bat_licence = _bat_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version(addon_dir)}.zip"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{PACKAGE}-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as zf:
            for path in _walk(addon_dir, EXCLUDE_FILES):
                relative = path.relative_to(addon_dir).as_posix()
                _add(zf, f"{PACKAGE}/{relative}", manifest if relative == MANIFEST else path.read_bytes())
            for path in _walk(PROTOCOL_DIR):
                _add(zf, f"{PACKAGE}/{PROTOCOL}/{path.relative_to(PROTOCOL_DIR).as_posix()}",
                     path.read_bytes())
            vendor = f"{PACKAGE}/vendor"
            _add(zf, f"{vendor}/README.txt",
                 b"Blender Asset Tracer (https://projects.blender.org/blender/blender-asset-tracer),\n"
                 b"GPL-2.0-or-later, bundled because Blender's Python does not ship it.\n"
                 b"brender_addon/packing.py imports it from here when it is not installed.\n")
            for path in _walk(bat_pkg):
                _add(zf, f"{vendor}/blender_asset_tracer/{path.relative_to(bat_pkg).as_posix()}",
                     path.read_bytes())
            if bat_licence is not None and bat_licence.is_file():
                _add(zf, f"{vendor}/blender_asset_tracer-LICENSE.txt", bat_licence.read_bytes())
        os.replace(tmp_name, target)   # atomic: a reader never sees half a zip
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def current(out_dir: Path, addon_dir: Path | None = None) -> Path:
    """The zip in `out_dir`, built first when it is missing or older than the add-on's
    sources, the protocol or the Blender Asset Tracer it carries (an editable install
    changes them).
    Zips of other versions in `out_dir` are removed."""
    addon_dir = addon_dir or ADDON_DIR
    target = Path(out_dir) / f"{PACKAGE}-{version(addon_dir)}.zip"
    sources = _walk(addon_dir, EXCLUDE_FILES) + _walk(PROTOCOL_DIR) + _walk(_bat_dir()[0])
    newest = max(p.stat().st_mtime for p in sources)
    if not target.is_file() or target.stat().st_mtime < newest:
        target = build(out_dir, addon_dir)
    for old in Path(out_dir).glob(f"{PACKAGE}-*.zip"):
        if old != target:
            old.unlink(missing_ok=True)
    return target
