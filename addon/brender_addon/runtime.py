"""What the add-on remembers while Blender runs: the submission under way, the
shot being watched and its last frame's thumbnail.

Worker threads (see `jobs`) never touch bpy; their messages are applied here on
Blender's main thread, by the submit operator's modal loop or by the
`bpy.app.timers` callback `drain()`. Under `blender -b` timers never fire, so a
script calls `drain()` itself (see `wait_for_shot`).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import bpy.utils.previews

from . import jobs
from .client import Client


@dataclass
class State:
    # The submission under way (a SubmitJob), its last progress report.
    submit_job: jobs.SubmitJob | None = None
    progress_text: str = ""
    progress_fraction: float | None = None
    last_error: str = ""
    last_info: str = ""
    # Missing files of a refused submission, until the artist submits anyway or cancels.
    missing: list[dict] = field(default_factory=list)
    # The shot being watched.
    shot: dict | None = None
    watcher: jobs.StatusWatcher | None = None
    status_error: str = ""
    thumbnail_path: str = ""
    thumbnail_frame: int | None = None
    thumbnail_icon: int = 0
    # Preferences' "Test connection".
    connection_busy: bool = False
    connection_text: str = ""
    connection_error: bool = False
    dashboard_url: str = ""
    # Reports shown when the watched shot ended (issue 17): (level, message).
    reports: list[tuple[str, str]] = field(default_factory=list)
    movie_url: str = ""
    thumb_dir: Path | None = None

    @property
    def submitting(self) -> bool:
        return self.submit_job is not None and self.submit_job.is_alive()

    @property
    def watching(self) -> bool:
        return self.watcher is not None and self.watcher.is_alive()


state = State()
_previews: Any = None


def redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"PROPERTIES", "PREFERENCES"}:
                area.tag_redraw()


def apply(kind: str, payload: Any) -> None:
    """Apply one worker message to `state` (main thread only)."""
    if kind == "progress":
        state.progress_text = str(payload.get("message", ""))
        state.progress_fraction = payload.get("fraction")
    elif kind == "shot":
        state.shot = payload
        state.status_error = ""
    elif kind == "thumbnail":
        _load_thumbnail(payload["path"], payload.get("frame"))
    elif kind == "error":
        state.last_error = str(payload)
    elif kind == "cancelled":
        state.last_error = str(payload)


def _load_thumbnail(path: str, frame: int | None) -> None:
    state.thumbnail_path = path
    state.thumbnail_frame = frame
    if _previews is None:
        return
    try:
        _previews.clear()
        preview = _previews.load(Path(path).name, path, "IMAGE")
        state.thumbnail_icon = int(preview.icon_id)
    except Exception as err:  # previews are a nicety: never break the panel for them
        print(f"Brender: cannot show thumbnail {path}: {err}")
        state.thumbnail_icon = 0


def watch(client: Client, shot: dict, interval: float = 3.0) -> jobs.StatusWatcher:
    """Follow `shot` on the farm from a worker thread; the panel shows it."""
    stop_watching()
    state.shot = {k: v for k, v in shot.items() if k != "files"}
    state.thumbnail_path = ""
    state.thumbnail_frame = None
    state.thumbnail_icon = 0
    if _previews is not None:
        _previews.clear()
    if state.thumb_dir is None:
        state.thumb_dir = Path(tempfile.mkdtemp(prefix="brender-thumbs-"))
    watcher = jobs.StatusWatcher(client, int(shot["id"]), state.thumb_dir, interval=interval)
    state.watcher = watcher
    watcher.start()
    if not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=0.2, persistent=True)
    return watcher


def stop_watching() -> None:
    if state.watcher is not None:
        state.watcher.cancel()
        state.watcher = None


def drain() -> float | None:
    """Timer callback: apply the watcher's messages; None stops the timer."""
    watcher = state.watcher
    if watcher is None:
        return None
    changed = False
    for kind, payload in watcher.drain():
        changed = True
        if kind == "progress":       # a failed poll: keep showing the last status
            state.status_error = str(payload.get("message", ""))
        elif kind == "report":     # the shot ended: a Blender report (issue 17)
            state.reports.append((payload["level"], payload["message"]))
            from . import reports
            reports.show(payload["level"], payload["message"])
        elif kind not in ("done", "error", "cancelled"):
            apply(kind, payload)
        elif kind == "error":
            state.status_error = str(payload)
    if changed:
        redraw()
    if not watcher.is_alive() and watcher.messages.empty():
        return None
    return 0.5


def wait_for_shot(timeout: float) -> dict | None:
    """Drain the watcher until the shot ends or `timeout` seconds pass (for
    scripts and `blender -b`, where timers do not run). Returns the last shot seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watcher = state.watcher
        if watcher is None:
            return state.shot
        alive = watcher.is_alive()
        drain()
        if not alive:
            return state.shot
        time.sleep(0.2)
    return state.shot


def register() -> None:
    global _previews
    try:
        _previews = bpy.utils.previews.new()
    except Exception as err:
        print(f"Brender: no thumbnail previews: {err}")
        _previews = None


def unregister() -> None:
    global _previews
    stop_watching()
    if state.submit_job is not None:
        state.submit_job.cancel()
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    if state.thumb_dir is not None:
        shutil.rmtree(state.thumb_dir, ignore_errors=True)
        state.thumb_dir = None
