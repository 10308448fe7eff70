#!/usr/bin/env bash
# Install what the add-on tests need beyond the project's pip `test` extras and
# Debian's `blender`:
# - xvfb, for tests/addon/test_blender34_gui.py (Blender's real UI, headless);
# - a Python 3.11 venv holding PyPI's `bpy==5.0.1` (Blender 5 as a Python
#   module), for tests/addon/test_blender5.py.
# Idempotent and quick when everything is there already.
set -euo pipefail

if ! command -v xvfb-run >/dev/null; then
    echo "setup_addon: installing xvfb"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends xvfb xauth >/dev/null
fi

BPY5_VENV="${BRENDER_BPY5_VENV:-/opt/brender-bpy5}"
BPY5_VERSION="5.0.1"

py="$BPY5_VENV/bin/python"
if [ -x "$py" ] && "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('bpy') != '$BPY5_VERSION')" 2>/dev/null; then
    echo "setup_addon: bpy $BPY5_VERSION venv ready at $BPY5_VENV"
    exit 0
fi

base=""
for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        base="$(command -v "$cand")"; break
    fi
done
if [ -z "$base" ]; then
    echo "setup_addon: bpy $BPY5_VERSION needs Python 3.11, none found" >&2
    exit 1
fi

echo "setup_addon: creating $BPY5_VENV with $base and bpy==$BPY5_VERSION"
rm -rf "$BPY5_VENV"
"$base" -m venv "$BPY5_VENV"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet "bpy==$BPY5_VERSION"
"$py" -c "import bpy; print('setup_addon: bpy', bpy.app.version_string)"
