"""The shot settings the artist picks in the panel, stored on the scene."""
from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty,
                       IntVectorProperty, PointerProperty, StringProperty)

from .protocol import shot
from .shot_spec import (COLOR_DEPTHS, COLOR_MODES, EXR_CODECS, MAX_CHUNK, MAX_NODES,
                        OUTPUT_FORMATS, SAMPLES)


LABELS = {"OPEN_EXR": "OpenEXR", "OPEN_EXR_MULTILAYER": "OpenEXR MultiLayer", "TARGA": "Targa",
          "WEBP": "WebP", "8": "8 bit", "16": "16 bit", "32": "32 bit (float)", "NONE": "None"}


def _items(values: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [(v, LABELS.get(v, v), "") for v in values]


def _is_camera(_settings: Any, obj: Any) -> bool:
    return bool(obj.type == "CAMERA")


# The overrides of the file's render settings (CONTRACT.md `render`): each is
# off by default (the file's own value) and has a value property of the same name.
OVERRIDES: dict[str, Any] = {
    "camera": PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera,
                              description="Render through this camera"),
    "view_layers": StringProperty(name="View Layers",
                                  description="Render only these view layers (comma separated)"),
    "output_format": EnumProperty(name="File Format", items=_items(OUTPUT_FORMATS),
                                  description="File format of the rendered frames"),
    "color_depth": EnumProperty(name="Color Depth", items=_items(COLOR_DEPTHS), default="16"),
    "color_mode": EnumProperty(name="Color", items=_items(COLOR_MODES), default="RGBA"),
    "exr_codec": EnumProperty(name="EXR Codec", items=_items(EXR_CODECS), default="ZIP"),
    "view_transform": StringProperty(name="View Transform", default="Standard",
                                     description="Colour management view transform"),
    "look": StringProperty(name="Look", default="None", description="Colour management look"),
    "exposure": FloatProperty(name="Exposure", default=0.0, min=float(shot.EXPOSURE[0]),
                              max=float(shot.EXPOSURE[1]), soft_min=-10.0, soft_max=10.0),
    "film_transparent": BoolProperty(name="Transparent", default=True,
                                     description="Transparent film (alpha) instead of the world"),
    "resolution": IntVectorProperty(name="Resolution", size=2, default=(1920, 1080),
                                    min=shot.RESOLUTION[0], max=shot.RESOLUTION[1],
                                    description="Width and height in pixels"),
    "resolution_percentage": IntProperty(name="Resolution %", default=100,
                                         min=shot.RESOLUTION_PERCENTAGE[0],
                                         max=shot.RESOLUTION_PERCENTAGE[1], subtype="PERCENTAGE"),
    "samples": IntProperty(name="Samples", default=128, min=SAMPLES[0], max=SAMPLES[1],
                           soft_max=4096,
                           description="Render samples: Cycles' samples or Eevee's render samples"),
}

# The render device a shot asks for; FILE sends none: the file's own setting.
DEVICES = [
    ("FILE", "File's Setting", "Render on the device the file is set to"),
    ("CPU", "CPU", "Render on the node's CPU"),
    ("GPU", "GPU", "Only nodes with a GPU render the shot, on their GPUs"),
    ("ANY", "Any", "Any node: its GPUs if it has some, else its CPU"),
]


class BrenderShotSettings(bpy.types.PropertyGroup):
    shot_name: StringProperty(  # type: ignore[valid-type]
        name="Shot Name",
        description="Name of the shot on the farm (empty: the file's name)",
        default="",
        maxlen=shot.MAX_NAME,
    )
    use_scene_range: BoolProperty(  # type: ignore[valid-type]
        name="Scene Frame Range",
        description="Render the scene's frame range; off: the range below",
        default=True,
    )
    frame_start: IntProperty(  # type: ignore[valid-type]
        name="Start", description="First frame to render", default=1,
        min=-shot.FRAME_LIMIT, max=shot.FRAME_LIMIT)
    frame_end: IntProperty(  # type: ignore[valid-type]
        name="End", description="Last frame to render", default=250,
        min=-shot.FRAME_LIMIT, max=shot.FRAME_LIMIT)
    frame_step: IntProperty(  # type: ignore[valid-type]
        name="Step", description="Render every n-th frame", default=1, min=1, soft_max=100)
    use_fixed_chunks: BoolProperty(  # type: ignore[valid-type]
        name="Fixed Chunks",
        description="Cut the shot into jobs of Chunk Size frames; off: the coordinator sizes "
                    "jobs to the farm",
        default=False)
    chunk_size: IntProperty(  # type: ignore[valid-type]
        name="Chunk Size",
        description="Frames per job: a node renders a chunk in one Blender session",
        default=10, min=1, max=MAX_CHUNK)
    priority: IntProperty(  # type: ignore[valid-type]
        name="Priority", description="Higher priority shots render first",
        default=shot.DEFAULT_PRIORITY, min=shot.PRIORITY[0], max=shot.PRIORITY[1])
    allow_scripts: BoolProperty(  # type: ignore[valid-type]
        name="Allow Scripts",
        description="Let the nodes run Python scripts and drivers stored in the file (only for trusted files)",
        default=False,
    )
    # What the shot asks of the nodes that render it (docs/scheduling.md).
    requires_tags: StringProperty(  # type: ignore[valid-type]
        name="Required Tags",
        description="Only nodes with all of these tags render the shot (comma separated)")
    prefers_tags: StringProperty(  # type: ignore[valid-type]
        name="Preferred Tags",
        description="Nodes with these tags take this shot before others of its priority "
                    "(comma separated)")
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device", items=DEVICES, default="FILE",
        description="The render device the nodes use")
    blender_range: StringProperty(  # type: ignore[valid-type]
        name="Blender Versions",
        description="The Blender versions that may render the shot, e.g. >=4.2,<5, or 4.2 for "
                    "any 4.2.x. Empty: this Blender's series if a node has it, else the newest")
    use_max_nodes: BoolProperty(  # type: ignore[valid-type]
        name="Limit Nodes", description="Render on at most Max Nodes nodes at once",
        default=False)
    max_nodes: IntProperty(  # type: ignore[valid-type]
        name="Max Nodes", description="At most this many nodes render the shot at once",
        default=4, min=1, max=MAX_NODES)


for _key, _prop in OVERRIDES.items():
    BrenderShotSettings.__annotations__[_key] = _prop
    BrenderShotSettings.__annotations__[f"override_{_key}"] = BoolProperty(
        name=f"Override {_prop.keywords['name']}", default=False,
        description=f"Use the value here instead of the file's own {_prop.keywords['name']}")


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
