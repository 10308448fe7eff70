"""Make a tiny test scene: run with `blender -b --factory-startup --python make_scene.py -- OUT [JSON]`.

Options (JSON): width, height, samples, frame_end, transparent, engine, texture
(an image path the cube's material uses), link (a .blend whose object "Linked"
is linked in), object_name (rename the cube), fail_python (a driver that raises).
"""
import json
import sys

import bpy

argv = sys.argv[sys.argv.index("--") + 1:]
out = argv[0]
opts = json.loads(argv[1]) if len(argv) > 1 else {}

scene = bpy.context.scene
scene.render.engine = opts.get("engine", "CYCLES")
if scene.render.engine == "CYCLES":
    scene.cycles.samples = opts.get("samples", 4)
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
scene.render.resolution_x = opts.get("width", 64)
scene.render.resolution_y = opts.get("height", 36)
scene.render.resolution_percentage = 100
scene.render.film_transparent = opts.get("transparent", False)
scene.frame_start = 1
scene.frame_end = opts.get("frame_end", 10)
scene.render.fps = opts.get("fps", 24)

cube = bpy.data.objects["Cube"]
cube.name = opts.get("object_name", "Cube")
cube.animation_data_clear()
cube.location = (-1.5, 0, 0)
cube.keyframe_insert("location", frame=1)
cube.location = (1.5, 0, 0)
cube.keyframe_insert("location", frame=scene.frame_end)

if opts.get("texture"):
    mat = bpy.data.materials.new("Textured")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = bpy.data.images.load(opts["texture"])
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    cube.data.materials.clear()
    cube.data.materials.append(mat)

if opts.get("link"):
    with bpy.data.libraries.load(opts["link"], link=True, relative=True) as (src, dst):
        dst.objects = [n for n in src.objects if n == "Linked"]
    for obj in dst.objects:
        scene.collection.objects.link(obj)

if opts.get("fail_python"):
    # A registered driver that raises: only runs when auto-exec is enabled.
    text = bpy.data.texts.new("fail.py")
    text.write("raise RuntimeError('scene script ran')\n")
    text.use_module = True

bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=True)
