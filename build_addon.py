#!/usr/bin/env python3
"""Build the Blender add-on zip: dist/brender_addon-<version>.zip.

The zip holds one folder, `brender_addon/`, with the add-on's modules, its
`blender_manifest.toml` (Blender 4.2+ extension) next to `bl_info` in
`__init__.py` (legacy add-on, Blender 3.4+), and a copy of Blender Asset Tracer
in `brender_addon/vendor/` because Blender's Python does not ship it.
`submit_cli.py` (the `brender-submit` command) stays out.

    python build_addon.py [--out-dir DIR]

`build(out_dir)` is the same from Python (the coordinator calls it to serve the
zip when none is built yet).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "addon" / "brender_addon"
DIST = ROOT / "dist"
PACKAGE = "brender_addon"
EXCLUDE_FILES = {"submit_cli.py"}
EXCLUDE_DIRS = {"__pycache__", "vendor"}
# A fixed timestamp keeps the zip's bytes the same for the same sources.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


class BuildError(Exception):
    pass


def bl_info_version(addon_dir: Path = ADDON_DIR) -> str:
    tree = ast.parse((addon_dir / "__init__.py").read_text(encoding="utf-8"))
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
    raise BuildError("no bl_info in __init__.py")


def manifest_version(addon_dir: Path = ADDON_DIR) -> str:
    text = (addon_dir / "blender_manifest.toml").read_text(encoding="utf-8")
    try:
        import tomllib
        return str(tomllib.loads(text)["version"])
    except ImportError:  # Python < 3.11 (Blender 3.x's own Python)
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        if not match:
            raise BuildError("no version in blender_manifest.toml") from None
        return match.group(1)


def version(addon_dir: Path = ADDON_DIR) -> str:
    """The add-on's version; raises BuildError when bl_info and the manifest disagree."""
    legacy, manifest = bl_info_version(addon_dir), manifest_version(addon_dir)
    if legacy != manifest:
        raise BuildError(f"bl_info version {legacy} differs from blender_manifest.toml version {manifest}")
    return manifest


def _bat_dir() -> tuple[Path, Path | None]:
    """Where the installed blender_asset_tracer package (and its licence) are."""
    try:
        import blender_asset_tracer
    except ImportError:
        raise BuildError("blender-asset-tracer is not installed: pip install blender-asset-tracer") from None
    pkg = Path(blender_asset_tracer.__file__).resolve().parent
    licence = None
    try:
        from importlib import metadata
        dist = metadata.distribution("blender-asset-tracer")
        for f in dist.files or []:
            if Path(str(f)).name.upper().startswith(("LICENSE", "COPYING")):
                licence = Path(str(dist.locate_file(f)))
                break
    except Exception:
        pass
    return pkg, licence


def _walk(top: Path, exclude_files: set[str] = set()) -> list[Path]:
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


def build(out_dir: Path | None = None) -> Path:
    """Write `<out_dir>/brender_addon-<version>.zip` (default out_dir: dist/); return its path."""
    out_dir = Path(out_dir) if out_dir is not None else DIST
    ver = version()
    bat_pkg, bat_licence = _bat_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{ver}.zip"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{PACKAGE}-", suffix=".zip", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w") as zf:
            for path in _walk(ADDON_DIR, EXCLUDE_FILES):
                _add(zf, f"{PACKAGE}/{path.relative_to(ADDON_DIR).as_posix()}", path.read_bytes())
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DIST, help="where to write the zip (default: dist/)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out_dir)
    except BuildError as err:
        print(f"build_addon: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
