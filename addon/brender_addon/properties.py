"""The shot settings the artist picks in the panel, stored on the scene."""
from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

OUTPUT_FORMAT_ITEMS = [
    ("SCENE", "From Scene", "Use the scene's output file format (must be an image format)"),
    ("PNG", "PNG", "8 or 16 bit PNG images"),
    ("JPEG", "JPEG", "JPEG images"),
    ("OPEN_EXR", "OpenEXR", "OpenEXR images"),
    ("OPEN_EXR_MULTILAYER", "OpenEXR MultiLayer", "OpenEXR images with all render passes"),
]


class BrenderShotSettings(bpy.types.PropertyGroup):
    shot_name: StringProperty(  # type: ignore[valid-type]
        name="Shot Name",
        description="Name of the shot on the farm (empty: the file's name)",
        default="",
        maxlen=120,
    )
    use_scene_range: BoolProperty(  # type: ignore[valid-type]
        name="Scene Frame Range",
        description="Render the scene's frame range; off: the range below",
        default=True,
    )
    frame_start: IntProperty(  # type: ignore[valid-type]
        name="Start", description="First frame to render", default=1, min=0)
    frame_end: IntProperty(  # type: ignore[valid-type]
        name="End", description="Last frame to render", default=250, min=0)
    frame_step: IntProperty(  # type: ignore[valid-type]
        name="Step", description="Render every n-th frame", default=1, min=1, soft_max=100)
    chunk_size: IntProperty(  # type: ignore[valid-type]
        name="Chunk Size",
        description="Frames per job: a node renders a chunk in one Blender session",
        default=10, min=1, max=1000)
    priority: IntProperty(  # type: ignore[valid-type]
        name="Priority", description="Higher priority shots render first",
        default=50, min=0, max=100)
    output_format: EnumProperty(  # type: ignore[valid-type]
        name="Output Format", description="File format of the rendered frames",
        items=OUTPUT_FORMAT_ITEMS, default="SCENE")
    use_scene_resolution: BoolProperty(  # type: ignore[valid-type]
        name="Scene Resolution %",
        description="Use the scene's resolution percentage; off: the value below",
        default=True,
    )
    resolution_percentage: IntProperty(  # type: ignore[valid-type]
        name="Resolution %", description="Render at this percentage of the scene's resolution",
        default=100, min=1, max=1000, subtype="PERCENTAGE")
    allow_missing_files: BoolProperty(  # type: ignore[valid-type]
        name="Allow Missing Files",
        description="Submit even when external files are missing (they render as missing on the farm too)",
        default=False,
    )
    allow_scripts: BoolProperty(  # type: ignore[valid-type]
        name="Allow Scripts",
        description="Let the nodes run Python scripts and drivers stored in the file (only for trusted files)",
        default=False,
    )


def settings_of(scene: Any) -> BrenderShotSettings:
    """The scene's Brender settings (`scene.brender`)."""
    value: BrenderShotSettings = getattr(scene, "brender")
    return value


def register() -> None:
    bpy.utils.register_class(BrenderShotSettings)
    setattr(bpy.types.Scene, "brender", PointerProperty(type=BrenderShotSettings))


def unregister() -> None:
    delattr(bpy.types.Scene, "brender")
    bpy.utils.unregister_class(BrenderShotSettings)
