"""The Brender panel in Properties › Output."""
from __future__ import annotations

from typing import Any

import bpy

from . import gather, runtime
from .properties import OVERRIDES, settings_of

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
        col.prop(props, "use_fixed_chunks")
        sub = col.column(align=True)
        sub.active = props.use_fixed_chunks
        sub.prop(props, "chunk_size")
        col.prop(props, "priority")
        col = layout.column(heading="Allow")
        col.prop(props, "allow_scripts", text="Scripts")

        self.draw_warnings(layout, scene)

        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("brender.submit", icon="RENDER_ANIMATION")
        row.operator("brender.open_dashboard", text="", icon="URL")
        self.draw_state(layout)

    def draw_warnings(self, layout: Any, scene: Any) -> None:
        """Show the problems Submit would report, before it is pressed."""
        for problem in gather.problems(scene):
            layout.label(text=problem.short, icon="ERROR")

    def draw_state(self, layout: Any) -> None:
        state = runtime.state
        if state.submitting:
            box = layout.box()
            row = box.row()
            _progress(row, state.progress_fraction, state.progress_text or "Submitting")
            row.operator("brender.cancel_submit", text="", icon="CANCEL")
        if state.missing:
            self.draw_missing(layout, state.missing)
        elif state.last_error:
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
        for notice in shot.get("notices") or []:   # e.g. which Blender stands in for this one
            box.label(text=str(notice), icon="INFO")
        if shot.get("waiting"):
            box.label(text=f"Waiting: {shot['waiting']}", icon="SORTTIME")
        if status == "completed":
            box.operator("brender.open_movie", icon="FILE_MOVIE")
        if state.status_error:
            box.label(text=state.status_error, icon="ERROR")
        if state.thumbnail_icon:
            box.label(text=f"Last frame: {state.thumbnail_frame}")
            box.template_icon(icon_value=state.thumbnail_icon, scale=8.0)


    def draw_missing(self, layout: Any, missing: list[dict]) -> None:
        """The artist's choice after a submission found missing files."""
        box = layout.box()
        box.label(text=f"{len(missing)} external file(s) are missing; nothing was uploaded",
                  icon="ERROR")
        for entry in missing[:12]:
            box.label(text=f"{entry['path']}  ({entry['used_by']})")
        if len(missing) > 12:
            box.label(text=f"... and {len(missing) - 12} more")
        row = box.row(align=True)
        row.operator("brender.dismiss_missing", icon="CANCEL")
        anyway = row.operator("brender.submit", text="Submit Anyway", icon="ERROR")
        anyway.allow_missing = True


# Where each override's value lives in the file: (data path from the scene, property).
FILE_VALUES: dict[str, tuple[str, str]] = {
    "camera": ("", "camera"),
    "output_format": ("render.image_settings", "file_format"),
    "color_depth": ("render.image_settings", "color_depth"),
    "color_mode": ("render.image_settings", "color_mode"),
    "exr_codec": ("render.image_settings", "exr_codec"),
    "view_transform": ("view_settings", "view_transform"),
    "look": ("view_settings", "look"),
    "exposure": ("view_settings", "exposure"),
    "film_transparent": ("render", "film_transparent"),
    "resolution": ("render", "resolution_x"),
    "resolution_percentage": ("render", "resolution_percentage"),
}


# Where the file's samples live, by render engine (Eevee Next is Blender 4.2-4.x's name).
FILE_SAMPLES: dict[str, tuple[str, str]] = {
    "CYCLES": ("cycles", "samples"),
    "BLENDER_EEVEE": ("eevee", "taa_render_samples"),
    "BLENDER_EEVEE_NEXT": ("eevee", "taa_render_samples"),
}


def _file_data(scene: Any, path: str) -> Any:
    data = scene
    for part in filter(None, path.split(".")):
        data = getattr(data, part)
    return data


class _BrenderSubpanel(bpy.types.Panel):
    """Where Brender's sub-panels sit: folded, under the Brender panel (a base only:
    the add-on registers the panels built on it, not this one)."""
    bl_parent_id = "BRENDER_PT_output"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"
    bl_options = {"DEFAULT_CLOSED"}


class BRENDER_PT_overrides(_BrenderSubpanel):
    """This shot only: each setting ticked here replaces the file's own."""

    bl_label = "Overrides"
    bl_idname = "BRENDER_PT_overrides"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        props = settings_of(scene)
        for key in OVERRIDES:
            row = layout.row(align=True)
            row.prop(props, f"override_{key}", text="")
            value = row.column(align=True)
            if getattr(props, f"override_{key}"):
                value.prop(props, key)
            elif key == "view_layers":
                used = [layer.name for layer in scene.view_layers if layer.use]
                value.label(text=f"View Layers: {', '.join(used)} (file)")
            elif key == "samples":
                value.enabled = False
                engine = str(scene.render.engine)
                where = FILE_SAMPLES.get(engine)
                if where is None:
                    value.label(text=f"Samples: not used by {engine}")
                else:
                    value.prop(_file_data(scene, where[0]), where[1], text="Samples (file)")
            else:
                value.enabled = False
                path, name = FILE_VALUES[key]
                data = _file_data(scene, path)
                value.prop(data, name, text=f"{OVERRIDES[key].keywords['name']} (file)")
                if key == "resolution":
                    value.prop(data, "resolution_y", text=" ")


class BRENDER_PT_nodes(_BrenderSubpanel):
    """Which nodes may render the shot: tags, device, Blender versions, how many at once."""

    bl_label = "Nodes"
    bl_idname = "BRENDER_PT_nodes"

    def draw(self, context: Any) -> None:
        layout: Any = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        props = settings_of(context.scene)
        col = layout.column(align=True)
        col.prop(props, "requires_tags")
        col.prop(props, "prefers_tags")
        layout.prop(props, "device")
        layout.prop(props, "blender_range")
        if not props.blender_range.strip():
            layout.label(text=f"Blender {gather.saved_with()} if a node has it, else the newest",
                         icon="INFO")
        row = layout.row(align=True)
        row.prop(props, "use_max_nodes", text="")
        sub = row.row(align=True)
        sub.active = props.use_max_nodes
        sub.prop(props, "max_nodes")


classes = (BRENDER_PT_output, BRENDER_PT_overrides, BRENDER_PT_nodes)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
