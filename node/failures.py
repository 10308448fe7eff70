"""Why a render failed, named from Blender's log in words an artist can act on."""
from __future__ import annotations

import json
import re
import signal

OUT_OF_MEMORY = re.compile(r"Malloc returns null|out of memory|CUDA error: Out of memory|"
                           r"std::bad_alloc|MemoryError|^Killed", re.IGNORECASE)
MISSING_FILE = re.compile(r"No such file or directory: ['\"](?P<path>.+?)['\"]")
# Blender's own: "Cannot read file '/x.blend': No such file or directory" (or another why)
UNREADABLE = re.compile(r"(?:Cannot read file|Failed to read blend file) "
                        r"['\"](?P<path>.+?)['\"]: (?P<why>.+)")
CRASH = re.compile(r"Segmentation fault|Aborted|Error: EXCEPTION_|SIGSEGV|backtrace")
NO_CAMERA = "Cannot render, no camera"
MOVIE = "Cannot write a single file with an animation format selected"
TRACEBACK = "Traceback (most recent call last):"


def classify(lines: list[str], returncode: int | None, settings: dict | None = None) -> str:
    """The cause of a failed render, from the log's lines and Blender's exit code;
    `settings` are the effective settings (else read from the log), for names."""
    settings = settings or _last_settings(lines)
    for line in reversed(lines):
        if line.startswith("BRENDER_FAILED "):
            return str(json.loads(line[len("BRENDER_FAILED "):]).get("reason"))
        if line.startswith("BRENDER_ERROR ") and '"NoGPU: ' in line:
            # blender_devices: a `gpu` shot on a node whose Blender sees none
            return str(json.loads(line[len("BRENDER_ERROR "):]).get("error"))[7:307]
    if any(NO_CAMERA in line for line in lines):
        scene = settings.get("scene")
        return f"no camera in scene '{scene}'" if scene else "no camera in the scene"
    if any(MOVIE in line for line in lines):
        return f"movie output format {settings.get('output_format', '?')} cannot be " \
               "rendered frame by frame"
    if any(OUT_OF_MEMORY.search(line) for line in lines):
        return "out of memory"
    for line in reversed(lines):
        match = UNREADABLE.search(line)
        if match:
            path, why = match.group("path"), match.group("why").strip()
            if why.startswith("No such file"):
                return f"missing file: {path}"
            return f"cannot read file: {path} ({why[:200]})"
        match = MISSING_FILE.search(line)
        if match:
            return f"missing file: {match.group('path')}"
    exception = _exception_line(lines)
    if exception:
        return f"Python error: {exception[:300]}"
    crash = next((ln for ln in reversed(lines) if CRASH.search(ln)), None)
    if crash:
        return f"Blender crashed: {crash.strip()[:300]}"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"Blender crashed: killed by signal {name}"
    if returncode:
        return f"Blender exited with code {returncode}"
    return "Blender stopped unexpectedly"


def _exception_line(lines: list[str]) -> str | None:
    """The `Type: message` line that ends the last Python traceback in the log."""
    start = max((i for i, line in enumerate(lines) if line.strip() == TRACEBACK), default=None)
    if start is None:
        return None
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith((" ", "\t")):
            return line.strip()
    return None


def _last_settings(lines: list[str]) -> dict:
    for line in reversed(lines):
        if line.startswith("BRENDER_SETTINGS "):
            try:
                return json.loads(line[len("BRENDER_SETTINGS "):])
            except ValueError:
                return {}
    return {}
