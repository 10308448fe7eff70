#!/usr/bin/env python3
"""Build the Blender add-on zip from this checkout: dist/brender_addon-<version>.zip.

    python build_addon.py [--out-dir DIR]

The build itself is `coordinator/addon_zip.py` (the coordinator serves the zip
with it); this script runs it on this checkout's sources, not an installed copy.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
sys.path[:0] = [str(ROOT), str(ROOT / "addon")]

from coordinator.addon_zip import ADDON_DIR, BuildError, build, version  # noqa: E402

__all__ = ["ADDON_DIR", "BuildError", "DIST", "ROOT", "build", "main", "version"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
