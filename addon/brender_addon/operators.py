"""Operators: submit, cancel, test connection, open dashboard.

Network and disk work runs in a `jobs.Job` thread; a modal operator with a
window-manager timer drains its messages, so Blender's UI stays responsive.
With no window (`blender -b`, where modal operators and timers never run) the
same job runs to completion in-line instead.
"""
from __future__ import annotations

from typing import Any, Literal

import bpy
from bpy.props import BoolProperty

from . import gather, jobs, preferences, preflight, runtime
from .shot_spec import SpecError

# What an operator's execute/invoke/modal may answer.
Result = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]


class _ThreadedOperator:
    """Mixin: run a `jobs.Job` without freezing the UI, then call `finish`."""

    _job: jobs.Job | None = None
    _timer: Any = None

    def on_message(self, context: Any, kind: str, payload: Any) -> None:
        pass

    def finish(self, context: Any, job: Any) -> Result:
        raise NotImplementedError

    def run_job(self, context: Any, job: jobs.Job) -> Result:
        if bpy.app.background or context.window is None:
            job.run()                     # in-line: the same code path, synchronously
            for kind, payload in job.drain():
                self.on_message(context, kind, payload)
            return self.finish(context, job)
        self._job = job
        job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> Result:
        job = self._job
        if job is None or event.type != "TIMER":
            return {"PASS_THROUGH"}
        for kind, payload in job.drain():
            self.on_message(context, kind, payload)
        runtime.redraw()
        if job.is_alive():
            return {"PASS_THROUGH"}
        for kind, payload in job.drain():
            self.on_message(context, kind, payload)
        context.window_manager.event_timer_remove(self._timer)
        self._timer = None
        self._job = None
        result = self.finish(context, job)
        runtime.redraw()
        return result


    def cancel(self, context: Any) -> None:
        """Blender ends modal operators when another file is opened (or Blender
        quits): stop the job too, nothing half-done is submitted."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        _status_text(context, None)


def _status_text(context: Any, text: str | None) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None and not bpy.app.background:
        workspace.status_text_set(text)


class BRENDER_OT_submit(_ThreadedOperator, bpy.types.Operator):
    """Pack this file with everything it uses and render it on the Brender farm"""

    bl_idname = "brender.submit"
    bl_label = "Submit to Brender"
    bl_options = {"REGISTER"}

    save_first: BoolProperty(  # type: ignore[valid-type]
        name="Save First", description="Save the file before submitting it",
        default=False, options={"SKIP_SAVE", "HIDDEN"})
    allow_missing: BoolProperty(  # type: ignore[valid-type]
        name="Submit Anyway", description="Submit although external files are missing "
        "(they render missing on the farm too, as they would here)",
        default=False, options={"SKIP_SAVE", "HIDDEN"})

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not runtime.state.submitting

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        col = layout.column()
        if self.allow_missing:
            count = len(runtime.state.missing)
            col.label(text=f"Submit without the {count} missing file(s)?", icon="ERROR")
            col.label(text="They render missing on the farm, as they would here.")
            return
        col.label(text="This file has unsaved changes.", icon="ERROR")
        col.label(text="Save it and submit the saved file?")

    def invoke(self, context: Any, event: Any) -> Result:
        try:
            preflight.check_saved(bpy.data.filepath, False)
        except preflight.NeverSaved as err:
            self.report({"ERROR"}, str(err))
            bpy.ops.wm.save_as_mainfile("INVOKE_DEFAULT")
            return {"CANCELLED"}
        if self.allow_missing:
            confirmed: Result = context.window_manager.invoke_props_dialog(self, width=360)
            return confirmed
        if bpy.data.is_dirty:
            self.save_first = True
            result: Result = context.window_manager.invoke_props_dialog(self, width=320)
            return result
        return self.execute(context)

    def execute(self, context: Any) -> Result:
        state = runtime.state
        if state.submitting:
            self.report({"ERROR"}, "A submission is already running")
            return {"CANCELLED"}
        saved = False
        if self.save_first and bpy.data.filepath and bpy.data.is_dirty:
            saved = "FINISHED" in bpy.ops.wm.save_mainfile()
        state.last_error = ""
        state.last_info = ""
        state.missing = []
        try:
            settings, blend = gather.gather(context.scene, just_saved=saved)
        except SpecError as err:
            state.last_error = str(err)
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        job = jobs.SubmitJob(preferences.client(context), blend, settings,
                             allow_missing=bool(self.allow_missing))
        state.submit_job = job
        state.progress_text = "Starting"
        state.progress_fraction = None
        return self.run_job(context, job)

    def on_message(self, context: Any, kind: str, payload: Any) -> None:
        runtime.apply(kind, payload)
        if kind == "progress":
            text = str(payload.get("message", ""))
            fraction = payload.get("fraction")
            if fraction is not None:
                text = f"{text} ({fraction:.0%})"
            _status_text(context, f"Brender: {text}")
            if bpy.app.background:
                print(f"Brender: {text}", flush=True)

    def finish(self, context: Any, job: Any) -> Result:
        state = runtime.state
        _status_text(context, None)
        state.progress_text = ""
        state.progress_fraction = None
        if job.error is not None or job.result is None:
            message = job.error or "Submission failed"
            state.last_error = message
            # Refused for missing files: the panel offers Cancel or Submit Anyway.
            refused = not self.allow_missing and not job.cancelled()
            state.missing = list(job.missing) if refused else []
            self.report({"WARNING"} if job.cancelled() else {"ERROR"}, message)
            return {"CANCELLED"}
        shot = job.result
        frames = shot.get("frames_total") or "?"
        state.last_info = f"Submitted shot '{shot.get('name')}' (#{shot.get('id')}), {frames} frames"
        if job.missing:
            state.last_info += f"; {len(job.missing)} missing file(s) allowed"
        # How the farm will render it, or why it waits (a tag or Blender no node has).
        for notice in shot.get("notices") or []:
            state.last_info += f"; {notice}"
        if shot.get("waiting"):
            state.last_info += f"; waiting: {shot['waiting']}"
        self.report({"INFO"}, state.last_info)
        prefs = preferences.preferences(context)
        runtime.watch(preferences.client(context), shot, interval=float(prefs.poll_interval))
        return {"FINISHED"}


class BRENDER_OT_cancel_submit(bpy.types.Operator):
    """Stop packing or uploading: nothing is submitted"""

    bl_idname = "brender.cancel_submit"
    bl_label = "Cancel Submission"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return runtime.state.submitting

    def execute(self, context: Any) -> Result:
        job = runtime.state.submit_job
        if job is not None:
            job.cancel()
        runtime.state.progress_text = "Cancelling"
        return {"FINISHED"}


class BRENDER_OT_dismiss_missing(bpy.types.Operator):
    """Do not submit without the missing files: fix their paths, then submit again"""

    bl_idname = "brender.dismiss_missing"
    bl_label = "Cancel"

    def execute(self, context: Any) -> Result:
        runtime.state.missing = []
        runtime.state.last_error = ""
        return {"FINISHED"}


class BRENDER_OT_clear_status(bpy.types.Operator):
    """Stop following the submitted shot in this panel (it keeps rendering)"""

    bl_idname = "brender.clear_status"
    bl_label = "Stop Following"

    def execute(self, context: Any) -> Result:
        runtime.stop_watching()
        state = runtime.state
        state.shot = None
        state.last_error = state.last_info = state.status_error = ""
        state.thumbnail_path = ""
        state.thumbnail_icon = 0
        return {"FINISHED"}


class BRENDER_OT_test_connection(_ThreadedOperator, bpy.types.Operator):
    """Reach the coordinator with this URL and token; report its version and nodes online"""

    bl_idname = "brender.test_connection"
    bl_label = "Test Connection"

    def execute(self, context: Any) -> Result:
        state = runtime.state
        state.connection_busy = True
        state.connection_text = ""
        return self.run_job(context, jobs.ConnectionCheck(preferences.client(context, timeout=10.0)))

    def finish(self, context: Any, job: Any) -> Result:
        state = runtime.state
        state.connection_busy = False
        if job.error is not None:
            state.connection_text = job.error
            state.connection_error = True
            self.report({"ERROR"}, job.error)
            return {"CANCELLED"}
        info = job.result
        nodes = info.get("nodes_online")
        state.connection_text = (f"Connected to Brender {info.get('version')}: "
                                 f"{nodes} node{'' if nodes == 1 else 's'} online")
        state.connection_error = False
        self.report({"INFO"}, state.connection_text)
        return {"FINISHED"}


class BRENDER_OT_open_dashboard(bpy.types.Operator):
    """Open the farm's dashboard in the web browser"""

    bl_idname = "brender.open_dashboard"
    bl_label = "Open Dashboard"

    def execute(self, context: Any) -> Result:
        url = preferences.preferences(context).url.strip().rstrip("/") + "/"
        shot = runtime.state.shot
        if shot and shot.get("id") is not None:
            url += f"#/shots/{shot['id']}"
        runtime.state.dashboard_url = url
        if bpy.app.background:
            self.report({"INFO"}, f"Dashboard: {url}")
            return {"FINISHED"}
        bpy.ops.wm.url_open(url=url)
        return {"FINISHED"}


class BRENDER_OT_open_movie(_ThreadedOperator, bpy.types.Operator):
    """Open the shot's preview movie in the web browser (the farm makes it once the shot
    completes)"""

    bl_idname = "brender.open_movie"
    bl_label = "Open Movie"

    @classmethod
    def poll(cls, context: Any) -> bool:
        shot = runtime.state.shot
        return bool(shot and shot.get("frames_done"))

    def execute(self, context: Any) -> Result:
        shot = runtime.state.shot
        assert shot is not None  # poll
        # A farm started with --lock-reads wants a credential for the movie too: the
        # link carries a read-only ticket, fetched off the UI thread.
        return self.run_job(context, jobs.MovieLink(preferences.client(context, timeout=10.0),
                                                    int(shot["id"])))

    def finish(self, context: Any, job: Any) -> Result:
        if job.error is not None:
            self.report({"ERROR"}, f"Cannot open the movie: {job.error}")
            return {"CANCELLED"}
        url = job.result
        runtime.state.movie_url = url
        if bpy.app.background:
            self.report({"INFO"}, f"Movie: {url}")
            return {"FINISHED"}
        bpy.ops.wm.url_open(url=url)
        return {"FINISHED"}


classes = (BRENDER_OT_submit, BRENDER_OT_cancel_submit, BRENDER_OT_dismiss_missing,
           BRENDER_OT_clear_status,
           BRENDER_OT_test_connection, BRENDER_OT_open_dashboard, BRENDER_OT_open_movie)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
