"""The node channel (WebSocket `/api/node/ws`): every message type, its fields, a
builder for each and the parsers the coordinator checks a node's messages with.

The builders give the dicts the peers send (as JSON) with their keys in the order
the wire has always had them."""
from __future__ import annotations

import json
from typing import Any

from . import text
from .errors import FieldError

MAX_MESSAGE = 1 << 20            # the coordinator's limit on one message from a node
MAX_SETTINGS = 16 * 1024         # bytes of a render_settings report
MAX_LOG_TAIL = 20_000
MAX_REASON = 500
MAX_TAGS = 50
MAX_TAG = 50
# What this coordinator understands beyond the first protocol, for nodes to check:
# "ready_in_report": `job_done` may carry `"ready": true` instead of a separate `ready`.
READY_IN_REPORT = "ready_in_report"
FEATURES = (READY_IN_REPORT,)

# Each message type and its fields besides `type`.
NODE_MESSAGES: dict[str, tuple[str, ...]] = {
    "hello": ("node_id", "name", "hostname", "platform", "blender_version", "cpu_count",
              "tags", "allow_scripts", "running_attempt", "agent_version", "devices",
              "blenders", "utc_offset"),
    "ready": (),
    "render_settings": ("attempt_id", "settings"),
    "progress": ("attempt_id", "frame", "sample", "samples"),
    "heartbeat": (),
    "job_done": ("attempt_id", "log_tail", "ready"),
    "job_failed": ("attempt_id", "reason", "log_tail"),
    "goodbye": (),
}
COORDINATOR_MESSAGES: dict[str, tuple[str, ...]] = {
    "welcome": ("node_id", "farm_id", "heartbeat_interval", "resume_attempt", "features"),
    "assign": ("job",),
    "cancel": ("attempt_id",),
    "error": ("error",),
}
ASSIGN_JOB = ("job_id", "attempt_id", "shot_id", "frames", "blend_path", "files", "render",
              "output_format", "resolution_percentage", "allow_scripts", "blender_version",
              "device")
MAX_DEVICES = 64
MAX_BLENDERS = 16
DEVICE_TYPES = ("CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")
MAX_UTC_OFFSET = 18 * 3600
# What a node may send once it has said hello.
AFTER_HELLO = frozenset(NODE_MESSAGES) - {"hello"}


# -- node -> coordinator -----------------------------------------------------------
def hello(node_id: str | None, name: str, hostname: str, platform: str,
          blender_version: str, cpu_count: int, tags: list[str], allow_scripts: bool,
          running_attempt: str | None, agent_version: str,
          devices: list[dict] | None = None, blenders: list[str] | None = None,
          utc_offset: int = 0) -> dict:
    """`devices`: the Cycles devices the node renders with ({type, name, id}, CPU
    included, GPUs not selected left out); `blenders`: the versions it offers, its
    first (`blender_version`) by default; `utc_offset`: seconds east of UTC of its
    local time, which its availability schedule is in."""
    return {"type": "hello", "node_id": node_id, "name": name, "hostname": hostname,
            "platform": platform, "blender_version": blender_version,
            "cpu_count": cpu_count, "tags": tags, "allow_scripts": allow_scripts,
            "running_attempt": running_attempt, "agent_version": agent_version,
            "devices": devices if devices is not None else [
                {"type": "CPU", "name": "CPU", "id": "CPU"}],
            "blenders": blenders if blenders is not None else [blender_version],
            "utc_offset": utc_offset}


def ready() -> dict:
    return {"type": "ready"}


def heartbeat() -> dict:
    return {"type": "heartbeat"}


def goodbye() -> dict:
    return {"type": "goodbye"}


def progress(attempt_id: str, frame: int, sample: int, samples: int) -> dict:
    return {"type": "progress", "attempt_id": attempt_id, "frame": frame,
            "sample": sample, "samples": samples}


def render_settings(attempt_id: str, settings: dict) -> dict:
    return {"type": "render_settings", "attempt_id": attempt_id, "settings": settings}


def job_done(attempt_id: str, log_tail: str) -> dict:
    """`ready` is added by the sender once it knows (see FEATURES)."""
    return {"type": "job_done", "attempt_id": attempt_id, "log_tail": log_tail}


def job_failed(attempt_id: str, reason: str, log_tail: str) -> dict:
    return {"type": "job_failed", "attempt_id": attempt_id, "reason": reason,
            "log_tail": log_tail}


# -- coordinator -> node -----------------------------------------------------------
def welcome(node_id: str, farm_id: str, heartbeat_interval: float,
            resume_attempt: bool) -> dict:
    return {"type": "welcome", "node_id": node_id, "farm_id": farm_id,
            "heartbeat_interval": heartbeat_interval, "resume_attempt": resume_attempt,
            "features": list(FEATURES)}


def assign(job_id: int, attempt_id: str, shot_id: int, frames: list[int], blend_path: str,
           files: list[dict], render: dict, allow_scripts: bool,
           blender_version: str | None = None, device: str | None = None) -> dict:
    """`blender_version`: which of the node's Blenders renders it (None: its first);
    `device`: cpu, gpu, any, or None for the file's own setting."""
    return {"type": "assign", "job": {
        "job_id": job_id, "attempt_id": attempt_id, "shot_id": shot_id,
        "frames": frames, "blend_path": blend_path, "files": files, "render": render,
        # Old nodes read these two; null means the file's own.
        "output_format": render.get("output_format"),
        "resolution_percentage": render.get("resolution_percentage"),
        "allow_scripts": allow_scripts, "blender_version": blender_version,
        "device": device}}


def cancel(attempt_id: str) -> dict:
    return {"type": "cancel", "attempt_id": attempt_id}


def error(message: str) -> dict:
    return {"type": "error", "error": message}


# -- parsing what a node sends -----------------------------------------------------
def parse_hello(msg: Any) -> dict:
    """The node's identity from its hello, checked; FieldError naming the field."""
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise FieldError("type", "the first message must be a hello")

    def text_of(key: str, default: str = "", limit: int = 200) -> str:
        return text.name_text(msg.get(key, default), key, limit)

    name = text_of("name").strip()
    if not name:
        raise FieldError("name", "must not be empty")
    tags = msg.get("tags", [])
    if not isinstance(tags, list) or len(tags) > MAX_TAGS or \
            not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG for t in tags):
        raise FieldError("tags", "must be a list of short strings")
    for i, tag in enumerate(tags):
        text.name_text(tag, f"tags[{i}]", MAX_TAG)
    cpu = msg.get("cpu_count", 0)
    if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu <= 100_000:
        raise FieldError("cpu_count", "must be a whole number")
    node_id = msg.get("node_id")
    if node_id is not None and (not isinstance(node_id, str) or len(node_id) != 32):
        node_id = None
    running = msg.get("running_attempt")
    blender_version = text_of("blender_version")
    return {**_offer_of(msg, blender_version), "node_id": node_id, "name": name, "hostname": text_of("hostname"),
            "platform": text_of("platform"), "blender_version": blender_version,
            "cpu_count": cpu, "tags": tags, "allow_scripts": msg.get("allow_scripts") is True,
            "running_attempt": running if isinstance(running, str) else None}


def _offer_of(msg: dict, blender_version: str) -> dict:
    """The hello's devices, Blender versions and clock (absent from old nodes: a CPU,
    their one Blender, UTC)."""
    devices = msg.get("devices")
    if devices is None:
        devices = [{"type": "CPU", "name": "CPU", "id": "CPU"}]
    if not isinstance(devices, list) or len(devices) > MAX_DEVICES:
        raise FieldError("devices", f"must be a list of at most {MAX_DEVICES} devices")
    clean = []
    for i, d in enumerate(devices):
        if not isinstance(d, dict) or str(d.get("type")).upper() not in DEVICE_TYPES:
            raise FieldError(f"devices[{i}]", "must be {type, name, id} with type one of "
                             + ", ".join(DEVICE_TYPES))
        clean.append({"type": str(d["type"]).upper(),
                      "name": text.name_text(d.get("name", ""), f"devices[{i}].name"),
                      "id": text.name_text(str(d.get("id", "")), f"devices[{i}].id")})
    blenders = msg.get("blenders")
    if blenders is None:
        blenders = [blender_version] if blender_version else []
    if not isinstance(blenders, list) or len(blenders) > MAX_BLENDERS or \
            not all(isinstance(b, str) for b in blenders):
        raise FieldError("blenders", f"must be a list of at most {MAX_BLENDERS} versions")
    blenders = [text.name_text(b, f"blenders[{i}]", 50) for i, b in enumerate(blenders)]
    offset = msg.get("utc_offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or \
            abs(offset) > MAX_UTC_OFFSET:
        raise FieldError("utc_offset", "must be whole seconds east of UTC (±18 h)")
    return {"devices": clean, "blenders": blenders, "utc_offset": offset}


def message_type(msg: Any) -> str:
    """The type of a message a node sends after its hello; FieldError when it has none
    or one this protocol does not know."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FieldError("type", "each message is an object with a type")
    kind: str = msg["type"]
    if kind not in AFTER_HELLO:
        raise FieldError("type", f"unknown message type {kind[:40]!r}")
    return kind


def progress_of(msg: dict) -> dict[str, int]:
    return {k: msg[k] for k in ("frame", "sample", "samples") if isinstance(msg.get(k), int)}


def settings_of(msg: dict) -> dict:
    settings = msg.get("settings")
    if not isinstance(settings, dict) or len(_encoded(settings)) > MAX_SETTINGS:
        raise FieldError("settings", f"must be an object of at most {MAX_SETTINGS} bytes")
    return settings


def log_tail_of(msg: dict) -> str:
    return str(msg.get("log_tail") or "")[-MAX_LOG_TAIL:]


def reason_of(msg: dict) -> str:
    return str(msg.get("reason") or "unknown")[:MAX_REASON]


def asks_ready(msg: dict) -> bool:
    return msg.get("ready") is True


def _encoded(value: Any) -> bytes:
    # As orjson writes it (compact, UTF-8): the size the coordinator stores.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
