"""What `blender -b FILE -o OUT -f N` does, for PyPI's bpy 5 (which has no command
line): open the file, render frame N with the file's own output settings, write it.

    /opt/brender-bpy5/bin/python render_plain.py -- FILE OUT N
"""
import os
import sys

import bpy

blend, out, frame = sys.argv[sys.argv.index("--") + 1:][:3]
bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
scene = bpy.context.scene
scene.render.filepath = out
# A still's path keeps its '#' in bpy 5: number it as `-o OUT -f N` does.
path = scene.render.frame_path(frame=int(frame))
if scene.render.use_file_extension:
    path = os.path.splitext(path)[0]
scene.render.filepath = path
scene.frame_set(int(frame))
bpy.ops.render.render(write_still=True)
print("RENDERED", path, flush=True)
