"""Render one frame of a .blend to a PNG, the reference for the farm's render.

    blender -b --factory-startup --python render_frame.py -- '{"blend", "frame", "out"}'
    python render_frame.py -- '{...}'       # PyPI's bpy
"""
import json
import sys

import bpy

opts = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.ops.wm.open_mainfile(filepath=opts["blend"], load_ui=False)
scene = bpy.context.scene
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_mode = "RGB"
scene.render.use_file_extension = False
scene.render.filepath = opts["out"]
scene.frame_set(opts["frame"])
bpy.ops.render.render(write_still=True)
print("RENDERED", opts["out"])
