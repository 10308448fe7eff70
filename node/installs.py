"""The Blenders a node offers (`--blender`, repeatable): a Blender binary or a Python
whose `bpy` module is Blender (a venv's `bin/python`). At start each is run once
(blender_probe.py) for its version and Cycles devices; the hello reports them and each
assignment names the version that renders it."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from brender_protocol.requirements import major_minor, parse_version

log = logging.getLogger("brender.node")
PROBE = Path(__file__).with_name("blender_probe.py")
BPY_BLENDER = Path(__file__).with_name("bpy_blender.py")
PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?(\.exe)?$", re.IGNORECASE)
PROBE_TIMEOUT = 180.0  # seconds: a first start may compile GPU kernels' caches
CPU = {"type": "CPU", "name": "CPU", "id": "CPU"}


class NoBlender(Exception):
    """A `--blender` that cannot be run, or runs and is no Blender."""


@dataclass(frozen=True)
class BlenderInstall:
    path: str                           # as given to --blender, resolved
    command: tuple[str, ...]            # how it is started; Blender's arguments follow
    version: str = ""                   # "" until probed
    devices: tuple[dict, ...] = field(default_factory=lambda: (dict(CPU),))


def command_for(path: str) -> tuple[str, ...]:
    """A Python runs Blender through bpy_blender.py; anything else is Blender itself."""
    if PYTHON_NAME.match(Path(path).name):
        return (path, str(BPY_BLENDER))
    return (path,)


def resolve(given: str) -> str:
    found = shutil.which(given) or given
    if not Path(found).is_file():
        raise NoBlender(f"Blender not found at {given!r}; use --blender PATH")
    return found


async def probe(given: str, gpus: Sequence[int] | None) -> BlenderInstall:
    """Run the Blender at `given` once: its version and the devices it renders with."""
    path = resolve(given)
    command = command_for(path)
    args = [*command, "-b", "--factory-startup", "--python-exit-code", "1",
            "--python", str(PROBE), "--"]
    if gpus is not None:
        args += ["--gpus", ",".join(str(i) for i in gpus)]
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise NoBlender(f"{given}: no answer in {PROBE_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise NoBlender(f"{given}: {exc}") from None
    text = out.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("BRENDER_PROBE "):
            found = json.loads(line[len("BRENDER_PROBE "):])
            for warning in found.get("warnings", []):
                log.warning("%s: %s", given, warning)
            return BlenderInstall(path, command, str(found["version"]),
                                  tuple(found["devices"]) or (dict(CPU),))
    tail = "\n".join(text.splitlines()[-8:])
    what = "a Python without bpy" if len(command) > 1 else "no Blender"
    raise NoBlender(f"{given} is {what} (exit {proc.returncode}):\n{tail}")


async def probe_all(given: Sequence[str], gpus: Sequence[int] | None) -> list[BlenderInstall]:
    """Every `--blender` that works, in the order given (the first is the default);
    one that does not is left out with a warning. NoBlender when none works."""
    results = await asyncio.gather(*(probe(g, gpus) for g in given), return_exceptions=True)
    installs: list[BlenderInstall] = []
    for g, result in zip(given, results):
        if isinstance(result, BaseException):
            if not isinstance(result, NoBlender):
                raise result
            log.warning("left out: %s", result)
        elif any(i.version == result.version for i in installs):
            log.warning("left out %s: Blender %s is offered already", g, result.version)
        else:
            installs.append(result)
            log.info("Blender %s at %s; devices: %s", result.version, result.path,
                     ", ".join(f"{d['type']} {d['name']}" for d in result.devices))
    if not installs:
        raise NoBlender("no --blender could be run: " + "; ".join(
            str(r) for r in results if isinstance(r, BaseException)))
    return installs


def choose(installs: Sequence[BlenderInstall], version: str | None) -> BlenderInstall:
    """The Blender an assignment names: that version, else the newest of its series,
    else the first (the coordinator of an older farm names none)."""
    if version:
        for install in installs:
            if install.version == version:
                return install
        try:
            series = major_minor(version)
            same = [i for i in installs if i.version and major_minor(i.version) == series]
        except ValueError:
            same = []
        if same:
            return max(same, key=lambda i: parse_version(i.version))
        log.warning("asked for Blender %s, which this node does not offer; using %s",
                    version, installs[0].version or installs[0].path)
    return installs[0]


def offered_devices(installs: Sequence[BlenderInstall]) -> list[dict]:
    """The node's devices for its hello: those any of its Blenders renders with."""
    seen: dict[tuple[str, str], dict] = {}
    for install in installs:
        for device in install.devices:
            seen.setdefault((device["type"], device["id"]), device)
    return list(seen.values())


def default_installs(blender: str) -> list[BlenderInstall]:
    """A node set up with one Blender path and not probed (tests, old options)."""
    return [BlenderInstall(blender, command_for(blender))]

