"""Make the add-on tests' project: a shot whose material uses an external
texture and which links an object from a second .blend outside the project.

    blender -b --factory-startup --python-exit-code 1 --python make_scene.py -- '{"root": "/tmp/x"}'
    python make_scene.py -- '{...}'      # with PyPI's bpy (Blender as a module)

Layout under root:
    project/shot.blend            camera, textured plane, the linked cube
    project/textures/checker.png  green/blue checker, referenced as //textures/checker.png
    assets/library.blend          "LinkedCube", linked by absolute path (outside the project)
    assets/tex/red.png            the cube's texture, //tex/red.png from library.blend
Options: "missing": true adds an image that does not exist; "extras": true adds
an image sequence, a sound, a font (absolute path) and a particle disk cache;
"movie": true sets
FFMPEG output; "no_camera": true removes the camera; "frames": [start, end];
"step": n; "compress": true saves both .blend files Compressed (Zstandard since
Blender 3.0); "second_scene": true adds scene "Closeup" (camera "CloseCam",
frames 5-8, JPEG, 32x32) while "Scene" stays active; "view_layer": true adds a
view layer "Background".
Renders are tiny (64x36), Cycles, 4 samples, no denoising, emission shading
(no lights needed, nearly noise free).
"""
import json
import sys
from pathlib import Path

import bpy

argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
opts = json.loads(argv[0]) if argv else {}
root = Path(opts["root"]).absolute()
project = root / "project"
assets = root / "assets"
(project / "textures").mkdir(parents=True, exist_ok=True)
(assets / "tex").mkdir(parents=True, exist_ok=True)


def save_png(path, size, color_at):
    img = bpy.data.images.new(path.stem, size, size, alpha=False)
    pixels = []
    for y in range(size):
        for x in range(size):
            pixels.extend(color_at(x, y))
    img.pixels[:] = pixels
    img.filepath_raw = str(path)
    img.file_format = "PNG"
    img.save()
    bpy.data.images.remove(img)


def emission_material(name, image_path):
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = bpy.data.images.load(str(image_path))
    tex.interpolation = "Closest"
    links = mat.node_tree.links
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat, tex.image


def empty_file():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0   # no .blend1 backups


def save_as(path):
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=bool(opts.get("compress")))


# -- the library: one cube with its own (relative) texture -------------------
save_png(assets / "tex" / "red.png", 8, lambda x, y: (0.9, 0.1, 0.05, 1.0))
empty_file()
save_as(assets / "library.blend")
bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.0, 0.0, 0.5))
cube = bpy.context.active_object
cube.name = "LinkedCube"
mat, img = emission_material("CubeMaterial", assets / "tex" / "red.png")
img.filepath = "//tex/red.png"
cube.data.materials.append(mat)
save_as(assets / "library.blend")

# -- the shot ----------------------------------------------------------------
save_png(project / "textures" / "checker.png", 8,
         lambda x, y: (0.05, 0.8, 0.1, 1.0) if (x // 2 + y // 2) % 2 else (0.1, 0.2, 0.9, 1.0))
empty_file()
save_as(project / "shot.blend")
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 4
scene.cycles.use_denoising = False
if hasattr(scene.cycles, "use_adaptive_sampling"):
    scene.cycles.use_adaptive_sampling = False
scene.cycles.device = "CPU"
scene.render.resolution_x = 64
scene.render.resolution_y = 36
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
scene.render.film_transparent = False
start, end = opts.get("frames", [1, 3])
scene.frame_start, scene.frame_end = start, end
scene.frame_step = opts.get("step", 1)
world = bpy.data.worlds.new("Black")
world.color = (0.0, 0.0, 0.0)
if bpy.app.version < (5, 0, 0):
    world.use_nodes = False
scene.world = world

bpy.ops.mesh.primitive_plane_add(size=6.0, location=(0.0, 0.0, 0.0))
plane = bpy.context.active_object
plane.name = "Floor"
mat, img = emission_material("FloorMaterial", project / "textures" / "checker.png")
img.filepath = "//textures/checker.png"
plane.data.materials.append(mat)
if opts.get("missing"):
    ghost = bpy.data.images.new("ghost", 4, 4)
    ghost.source = "FILE"
    ghost.filepath = "//textures/does_not_exist.png"
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = ghost
    ghost.use_fake_user = True

if not opts.get("no_camera"):
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = 4.0
    cam = bpy.data.objects.new("Camera", cam_data)
    cam.location = (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

# Link the cube from the library by absolute path (outside the project folder).
with bpy.data.libraries.load(str(assets / "library.blend"), link=True, relative=False) as (src, dst):
    dst.objects = ["LinkedCube"]
for obj in dst.objects:
    scene.collection.objects.link(obj)

if opts.get("extras"):
    # More kinds of external files, for the packing tests (not rendered):
    # an image sequence, a sound, a font by absolute path, a particle disk cache.
    seq_dir = project / "seq"
    seq_dir.mkdir(exist_ok=True)
    for n in (1, 2, 3):
        save_png(seq_dir / f"frame_{n:04d}.png", 4, lambda x, y, n=n: (n / 3, 0.5, 0.5, 1.0))
    seq = bpy.data.images.load(str(seq_dir / "frame_0001.png"))
    seq.source = "SEQUENCE"
    seq.filepath = "//seq/frame_0001.png"
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = seq
    node.image_user.frame_duration = 3

    import wave
    (project / "audio").mkdir(exist_ok=True)
    with wave.open(str(project / "audio" / "beep.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    editor = scene.sequence_editor_create()
    strips = getattr(editor, "strips", None) or editor.sequences
    strip = strips.new_sound("beep", str(project / "audio" / "beep.wav"), 1, 1)
    strip.sound.filepath = "//audio/beep.wav"

    curve = bpy.data.curves.new("Title", "FONT")
    curve.body = "Brender"
    curve.font = bpy.data.fonts.load("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    scene.collection.objects.link(bpy.data.objects.new("Title", curve))

    emitter = bpy.data.objects.new("Emitter", bpy.data.meshes.new("EmitterMesh"))
    emitter.data.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    scene.collection.objects.link(emitter)
    emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
    psys = emitter.particle_systems[0]
    psys.settings.count = 10
    psys.settings.frame_start, psys.settings.frame_end = 1, 2
    psys.point_cache.use_disk_cache = True
    save_as(project / "shot.blend")          # a disk cache needs a saved file
    scene.frame_end = 3
    override = {"scene": scene, "point_cache": psys.point_cache}
    with bpy.context.temp_override(**override):
        bpy.ops.ptcache.bake(bake=True)

if opts.get("view_layer"):
    scene.view_layers.new("Background")

if opts.get("second_scene"):
    closeup = bpy.data.scenes.new("Closeup")
    closeup.render.engine = "CYCLES"
    closeup.cycles.samples = 4
    closeup.cycles.use_denoising = False
    closeup.render.resolution_x = closeup.render.resolution_y = 32
    closeup.render.image_settings.file_format = "JPEG"
    closeup.frame_start, closeup.frame_end = 5, 8
    closeup.world = world
    close_cam = bpy.data.objects.new("CloseCam", bpy.data.cameras.new("CloseCam"))
    close_cam.location = (0.0, 0.0, 4.0)
    closeup.collection.objects.link(close_cam)
    closeup.collection.objects.link(plane)
    closeup.camera = close_cam

if opts.get("movie"):
    scene.render.image_settings.file_format = "FFMPEG"
save_as(project / "shot.blend")
print("MADE", project / "shot.blend")
