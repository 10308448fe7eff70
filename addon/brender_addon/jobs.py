"""Work that must not freeze Blender's UI, as threads that talk through a queue.

bpy-free. Each job posts `(kind, payload)` messages to its `messages` queue;
Blender's main thread drains them (a modal operator or `bpy.app.timers`), or a
test or script calls `run()` directly and reads the queue afterwards.

Message kinds:
- `progress` `{"message": str, "fraction": float | None}`
- `error`    `str`   the job stopped; the message is for the artist
- `cancelled` `str`
- `done`     job-specific result (SubmitJob: the created Shot; ConnectionCheck:
             `{"version", "nodes_online"}`; MovieLink: the movie's address)
- `shot`     Shot (StatusWatcher, on every change)
- `thumbnail` `{"path", "frame", "shot_id"}` (StatusWatcher, a new last frame)
"""
from __future__ import annotations

import dataclasses
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import packing, shot_news, shot_spec
from .client import BrenderError, Cancelled, Client, Unauthorized, Unreachable

FINAL_STATUSES = ("completed", "failed", "cancelled", "deleted")


class Job(threading.Thread):
    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cancel = threading.Event()
        self.result: Any = None
        self.error: str | None = None

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def post(self, kind: str, payload: Any = None) -> None:
        self.messages.put((kind, payload))

    def drain(self) -> list[tuple[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def run(self) -> None:
        try:
            self.result = self.work()
        except (Cancelled, packing.PackCancelled):
            self.error = "Cancelled"
            self.post("cancelled", "Submission cancelled; nothing was submitted")
            return
        except (BrenderError, packing.PackError, shot_spec.SpecError, OSError) as err:
            if self.cancelled():
                # Aborting BAT mid-copy can surface as an I/O error: it was the cancel.
                self.error = "Cancelled"
                self.post("cancelled", "Submission cancelled; nothing was submitted")
                return
            self.error = str(err)
            self.post("error", self.error)
            return
        except Exception as err:  # a bug: still tell the artist instead of dying silently
            self.error = f"{type(err).__name__}: {err}"
            self.post("error", self.error)
            return
        self.post("done", self.result)

    def work(self) -> Any:
        raise NotImplementedError


def check_connection(client: Client) -> dict:
    """Reach the coordinator and check the token; raise with a clear message."""
    try:
        info = client.version()
    except Unreachable as err:
        raise Unreachable(f"{err}. Is the coordinator running, and is the URL in the "
                          "Brender add-on preferences right?") from None
    try:
        client.check_token()
    except Unauthorized:
        raise Unauthorized("The coordinator refused the farm token: set the right one in "
                           "the Brender add-on preferences.", 401) from None
    return {"version": info.get("version"), "nodes_online": info.get("nodes_online")}


class ConnectionCheck(Job):
    def __init__(self, client: Client):
        super().__init__("brender-connection-check")
        self.client = client

    def work(self) -> dict:
        self.post("progress", {"message": f"Connecting to {self.client.url}", "fraction": None})
        return check_connection(self.client)


class MovieLink(Job):
    """The address of a shot's preview movie that a browser can open (with a
    read-only ticket: downloads.movie_link)."""

    def __init__(self, client: Client, shot_id: int):
        super().__init__("brender-movie-link")
        self.client = client
        self.shot_id = shot_id

    def work(self) -> str:
        from .downloads import movie_link
        return movie_link(self.client, self.shot_id)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class SubmitJob(Job):
    """Check the farm, pack the .blend, upload what is missing, create the shot.

    Nothing is uploaded before every check passed: coordinator reachable, token
    accepted, settings valid, no missing external files (unless allowed: then
    the shot records them). Refused for missing files, `missing` lists them.
    """

    def __init__(self, client: Client, blend_path: Path, settings: shot_spec.ShotSettings,
                 *, allow_missing: bool = False, project: Path | None = None,
                 work_dir: Path | None = None):
        super().__init__("brender-submit")
        self.client = client
        self.blend_path = Path(blend_path)
        self.settings = settings
        self.allow_missing = allow_missing
        self.project = project
        self.work_dir = work_dir
        self.missing: list[dict[str, str]] = []   # [{path, used_by}]
        self.pack: packing.PackResult | None = None
        self._last_progress = 0.0

    def _progress(self, message: str, fraction: float | None = None) -> None:
        # Byte counts arrive per 8 KiB block: pass on at most ~10 a second.
        now = time.monotonic()
        if fraction is not None and 0.0 < fraction < 1.0 and now - self._last_progress < 0.1:
            return
        self._last_progress = now
        self.post("progress", {"message": message, "fraction": fraction})

    def work(self) -> dict:
        shot_spec.validate(self.settings)
        self._progress(f"Connecting to {self.client.url}")
        check_connection(self.client)
        if self.cancelled():
            raise Cancelled("Cancelled before packing")
        tmp = Path(tempfile.mkdtemp(prefix="brender-pack-", dir=self.work_dir))
        try:
            self._progress("Packing")
            try:
                pack = packing.pack_blend(
                    self.blend_path, tmp / "pack",
                    progress=lambda msg, frac: self._progress(f"Packing: {msg}", frac),
                    cancelled=self.cancelled, project=self.project,
                    allow_missing=self.allow_missing)
            except packing.MissingFiles as err:
                self.missing = err.missing
                raise
            self.pack = pack
            self.missing = pack.missing_report()
            body = shot_spec.build(dataclasses.replace(self.settings, missing=self.missing),
                                   pack.files, pack.blend_path)
            started = time.monotonic()

            def uploaded(sent: int, total: int) -> None:
                if total:
                    rate = sent / max(time.monotonic() - started, 1e-3)
                    self._progress(f"Uploading {format_size(sent)} of {format_size(total)} "
                                   f"({format_size(rate)}/s)", sent / total)
            count, sent = self.client.upload_missing(pack.files, pack.root, uploaded, self.cancelled)
            if self.cancelled():
                raise Cancelled("Upload cancelled")
            self._progress(f"Uploaded {count} of {len(pack.files)} files ({format_size(sent)}); "
                           "creating the shot", 1.0)
            return self.client.create_shot(body)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class StatusWatcher(Job):
    """Poll a shot every `interval` seconds until it ends (or `cancel()`).

    Posts `shot` when the shot changes and `thumbnail` when a newer frame of this
    shot is done (its thumbnail downloaded into `thumb_dir`). Poll errors are
    posted as `progress` and retried: the coordinator may restart.
    """

    def __init__(self, client: Client, shot_id: int, thumb_dir: Path, interval: float = 3.0):
        super().__init__("brender-status")
        self.client = client
        self.shot_id = int(shot_id)
        self.thumb_dir = Path(thumb_dir)
        self.interval = interval
        self.last_shot: dict | None = None
        self.last_frame_key: tuple | None = None
        self._thumb_for_done = 0

    def poll_once(self) -> dict:
        try:
            shot = self.client.shot(self.shot_id)
        except BrenderError as err:
            if err.status != 404:
                raise
            shot = dict(self.last_shot or {"id": self.shot_id}, status="deleted")
        summary = {k: v for k, v in shot.items() if k != "files"}
        if summary != self.last_shot:
            self.last_shot = summary
            self.post("shot", summary)
        done = int(shot.get("frames_done") or 0)
        if done and done != self._thumb_for_done:
            self._update_thumbnail()
            self._thumb_for_done = done
        return summary

    def _update_thumbnail(self) -> None:
        frame = self.client.latest_frame()
        if not frame or frame.get("shot_id") != self.shot_id:
            # Another shot rendered since: look at this shot's own frames.
            page = self.client.frames_page(self.shot_id, 0, 1000)
            done = [f for f in page.get("frames", []) if f.get("status") == "done"]
            frame = max(done, key=lambda f: f.get("rendered_at") or 0, default=None)
        if not frame or not frame.get("thumbnail_url"):
            return
        key = (frame.get("number"), frame.get("sha256"), frame.get("rendered_at"))
        if key == self.last_frame_key:
            return
        url = str(frame["thumbnail_url"])
        data = self.client.download_url(url)
        suffix = ".png" if url.lower().split("?")[0].endswith(".png") else ".jpg"
        self.thumb_dir.mkdir(parents=True, exist_ok=True)
        path = self.thumb_dir / f"shot{self.shot_id}-frame{frame.get('number')}-{int(time.time() * 1000)}{suffix}"
        path.write_bytes(data)
        self.last_frame_key = key
        self.post("thumbnail", {"path": str(path), "frame": frame.get("number"), "shot_id": self.shot_id})

    def _report_end(self, shot: dict) -> None:
        """The shot ended: the artist gets a Blender report (`shot_news`)."""
        suspicious = 0
        if shot.get("status") == "completed":
            try:
                suspicious = len(self.client.suspicious_frames(self.shot_id))
            except BrenderError:
                pass   # the report says what is known
        report = shot_news.finished_report(shot, suspicious)
        if report is not None:
            self.post("report", {"level": report[0], "message": report[1]})

    def work(self) -> dict | None:
        while not self.cancelled():
            try:
                shot = self.poll_once()
            except BrenderError as err:
                self.post("progress", {"message": f"Status: {err}", "fraction": None})
            else:
                if shot.get("status") in FINAL_STATUSES:
                    self._report_end(shot)
                    return shot
            if self._cancel.wait(self.interval):
                break
        return self.last_shot
