"""The Brender panel in Properties › Output."""
from __future__ import annotations

from typing import Any

import bpy

from . import gather, runtime, shot_spec
from .properties import settings_of

STATUS_ICONS = {
    "queued": "SORTTIME", "active": "RENDER_ANIMATION", "paused": "PAUSE",
    "completed": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "deleted": "TRASH",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _progress(layout: Any, fraction: float | None, text: str) -> None:
    if fraction is not None and hasattr(layout, "progress"):   # Blender 4.0+
        layout.progress(factor=fraction, type="BAR", text=text)
    elif fraction is not None:
        layout.label(text=f"{text} ({fraction:.0%})")
    else:
        layout.label(text=text)


class BRENDER_PT_output(bpy.types.Panel):
    bl_label = "Brender"
    bl_idname = "BRENDER_PT_output"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        props = settings_of(scene)

        if bpy.app.version >= (4, 1, 0):   # placeholder text: the name used when empty
            layout.prop(props, "shot_name", placeholder=gather.default_name())
        else:
            layout.prop(props, "shot_name")

        col = layout.column(align=True)
        col.prop(props, "use_scene_range")
        if props.use_scene_range:
            sub = col.column(align=True)
            sub.enabled = False
            sub.prop(scene, "frame_start", text="Start")
            sub.prop(scene, "frame_end", text="End")
            sub.prop(scene, "frame_step", text="Step")
        else:
            col.prop(props, "frame_start")
            col.prop(props, "frame_end")
            col.prop(props, "frame_step")

        col = layout.column(align=True)
        col.prop(props, "chunk_size")
        col.prop(props, "priority")
        layout.prop(props, "output_format")
        col = layout.column(align=True)
        col.prop(props, "use_scene_resolution")
        if props.use_scene_resolution:
            sub = col.column()
            sub.enabled = False
            sub.prop(scene.render, "resolution_percentage", text="Resolution %")
        else:
            col.prop(props, "resolution_percentage")
        col = layout.column(heading="Allow")
        col.prop(props, "allow_missing_files", text="Missing Files")
        col.prop(props, "allow_scripts", text="Scripts")

        self.draw_warnings(layout, scene)

        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("brender.submit", icon="RENDER_ANIMATION")
        row.operator("brender.open_dashboard", text="", icon="URL")
        self.draw_state(layout)

    def draw_warnings(self, layout: Any, scene: Any) -> None:
        """Show the problems Submit would report, before it is pressed."""
        problems = []
        if scene.camera is None:
            problems.append("The scene has no camera")
        try:
            shot_spec.check_output_format(gather.output_format(scene))
        except shot_spec.SpecError:
            problems.append(f"Output format {gather.output_format(scene)} is not an image format for the farm")
        if shot_spec.frame_count(*gather.frame_range(scene)) == 0:
            problems.append("The frame range is empty")
        for problem in problems:
            layout.label(text=problem, icon="ERROR")

    def draw_state(self, layout: Any) -> None:
        state = runtime.state
        if state.submitting:
            box = layout.box()
            row = box.row()
            _progress(row, state.progress_fraction, state.progress_text or "Submitting")
            row.operator("brender.cancel_submit", text="", icon="CANCEL")
        if state.last_error:
            box = layout.box()
            lines = state.last_error.splitlines() or [state.last_error]
            box.label(text=lines[0], icon="ERROR")
            for line in lines[1:12]:
                box.label(text=line.strip())
        elif state.last_info and not state.shot:
            layout.label(text=state.last_info, icon="INFO")
        shot = state.shot
        if not shot:
            return
        box = layout.box()
        row = box.row()
        status = str(shot.get("status", "?"))
        row.label(text=f"{shot.get('name')} (#{shot.get('id')}): {status}",
                  icon=STATUS_ICONS.get(status, "QUESTION"))
        row.operator("brender.clear_status", text="", icon="X")
        total = shot.get("frames_total") or 0
        done = shot.get("frames_done") or 0
        text = f"{done} of {total} frames"
        if shot.get("frames_rendering"):
            text += f", {shot['frames_rendering']} rendering"
        _progress(box, done / total if total else 0.0, text)
        if status == "active" and shot.get("eta_seconds") is not None:
            box.label(text=f"About {_duration(shot.get('eta_seconds'))} left"
                      f" ({_duration(shot.get('avg_frame_time'))} per frame)")
        if shot.get("failure_reason"):
            box.label(text=str(shot["failure_reason"]), icon="ERROR")
        if state.status_error:
            box.label(text=state.status_error, icon="ERROR")
        if state.thumbnail_icon:
            box.label(text=f"Last frame: {state.thumbnail_frame}")
            box.template_icon(icon_value=state.thumbnail_icon, scale=8.0)


def register() -> None:
    bpy.utils.register_class(BRENDER_PT_output)


def unregister() -> None:
    bpy.utils.unregister_class(BRENDER_PT_output)
