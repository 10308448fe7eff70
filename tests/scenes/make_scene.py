"""Make a tiny test scene: run with `blender -b --factory-startup --python make_scene.py -- OUT [JSON]`.

Options (JSON): width, height, samples, frame_end, transparent, engine, texture
(an image path the cube's material uses), link (a .blend whose object "Linked"
is linked in), object_name (rename the cube), script (Python run on load when auto-exec is on),
noise_world (per-pixel noise background: big, incompressible frames),
color ([r, g, b]: the cube's emission colour, so its pixels are exactly that hue),
image ({"file_format", "color_mode", "color_depth", "exr_codec"}: the file's output),
view ({"view_transform", "look", "exposure"}: the file's colour management),
no_camera (the scene has none), camera2 (a second camera of that name, looking from
elsewhere), view_layers (names of extra view layers, in every scene), scene2 (a second scene of that
name, a linked copy rendered at twice the width), active_scene2 (the file is saved showing
scene2, which makes it the file's active scene), blank_frames (frame numbers on which
the cube is hidden from the render and the world is black: all-black frames).
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

if opts.get("color"):
    mat = bpy.data.materials.new("Coloured")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.remove(nodes["Principled BSDF"])
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*opts["color"], 1.0)
    mat.node_tree.links.new(emission.outputs["Emission"],
                            nodes["Material Output"].inputs["Surface"])
    cube.data.materials.clear()
    cube.data.materials.append(mat)

for key, value in opts.get("image", {}).items():
    setattr(scene.render.image_settings, key, value)
for key, value in opts.get("view", {}).items():
    setattr(scene.view_settings, key, value)

if opts.get("camera2"):
    data = bpy.data.cameras.new(opts["camera2"])
    camera2 = bpy.data.objects.new(opts["camera2"], data)
    camera2.location = (0, -9, 0)
    camera2.rotation_euler = (1.5708, 0, 0)
    scene.collection.objects.link(camera2)

if opts.get("no_camera"):
    bpy.data.objects.remove(bpy.data.objects["Camera"])

if opts.get("scene2"):
    scene2 = bpy.data.scenes.new(opts["scene2"])
    for obj in scene.objects:
        scene2.collection.objects.link(obj)
    scene2.camera = scene.camera
    scene2.render.engine = scene.render.engine
    if scene.render.engine == "CYCLES":
        scene2.cycles.samples = scene.cycles.samples
        scene2.cycles.use_denoising = False
    scene2.render.resolution_x = scene.render.resolution_x * 2
    scene2.render.resolution_y = scene.render.resolution_y
    if opts.get("active_scene2"):
        bpy.context.window.scene = scene2

for name in opts.get("view_layers", []):
    for each in bpy.data.scenes:
        each.view_layers.new(name)

if opts.get("link"):
    with bpy.data.libraries.load(opts["link"], link=True, relative=True) as (src, dst):
        dst.objects = [n for n in src.objects if n == "Linked"]
    for obj in dst.objects:
        scene.collection.objects.link(obj)

if opts.get("noise_world"):
    # Per-pixel white noise behind the scene: frames that do not compress.
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    coord = nodes.new("ShaderNodeTexCoord")
    scale = nodes.new("ShaderNodeVectorMath")
    scale.operation = "SCALE"
    scale.inputs["Scale"].default_value = 100000.0
    noise = nodes.new("ShaderNodeTexWhiteNoise")
    noise.noise_dimensions = "2D"
    links.new(coord.outputs["Window"], scale.inputs[0])
    links.new(scale.outputs["Vector"], noise.inputs["Vector"])
    links.new(noise.outputs["Color"], nodes["Background"].inputs["Color"])

if opts.get("blank_frames"):
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    for number in range(1, scene.frame_end + 1):
        cube.hide_render = number in opts["blank_frames"]
        cube.keyframe_insert("hide_render", frame=number)

if opts.get("script"):
    # A text block registered as a module: Blender runs it on load only when
    # auto-exec is enabled, exactly like a rig's or an add-on's embedded script.
    text = bpy.data.texts.new("scene_script.py")
    text.write(opts["script"])
    text.use_module = True

bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=True)
