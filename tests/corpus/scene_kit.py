"""Blender helpers for make_corpus.py: tiny scenes, emission materials (no lights
needed, nearly noise free), images written by Blender. Runs in Blender 3.4 and bpy 5."""
from pathlib import Path

import bpy

BLENDER5 = bpy.app.version >= (5, 0, 0)


def save_png(path, width, height, color_at):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = bpy.data.images.new(path.stem, width, height, alpha=True)
    pixels = []
    for y in range(height):
        for x in range(width):
            pixels.extend(color_at(x, y))
    img.pixels[:] = pixels
    img.filepath_raw = str(path)
    img.file_format = "PNG"
    img.save()
    bpy.data.images.remove(img)
    return path


def checker(a, b, size=2):
    return lambda x, y: a if (x // size + y // size) % 2 else b


def empty_file():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0   # no .blend1 backups


def save_as(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=False, relative_remap=False)


def base_scene(engine="CYCLES", width=48, height=32):
    scene = bpy.context.scene
    render = scene.render
    if engine == "EEVEE":
        engine = "BLENDER_EEVEE_NEXT" if (4, 2, 0) <= bpy.app.version < (5, 0, 0) else "BLENDER_EEVEE"
    render.engine = engine
    scene.cycles.samples = 2
    scene.cycles.seed = 7
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.device = "CPU"
    scene.eevee.taa_render_samples = 2
    scene.display.render_aa = "OFF"
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.image_settings.color_depth = "8"
    render.use_compositing = render.use_sequencer = False
    scene.frame_start, scene.frame_end = 1, 3
    world = bpy.data.worlds.new("Black")
    world.color = (0.0, 0.0, 0.0)
    scene.world = world
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = 4.0
    cam.location = (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene


def node_material(name):
    mat = bpy.data.materials.new(name)
    if not BLENDER5:
        mat.use_nodes = True
    mat.node_tree.nodes.clear()
    return mat


def emission_material(name, image=None, color=(1.0, 1.0, 1.0, 1.0)):
    """Emission (no lights needed, nearly noise free) of an image, Closest-sampled."""
    mat = node_material(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = color
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    if image is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Closest"
        links.new(tex.outputs["Color"], emit.inputs["Color"])
        return mat, tex
    return mat, None


def plane(name, size, location, material=None, scale=(1.0, 1.0, 1.0)):
    bpy.ops.mesh.primitive_plane_add(size=size, location=location)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = scale
    if material is not None:
        obj.data.materials.append(material)
    return obj


def image(path, filepath=None):
    img = bpy.data.images.load(str(path))
    if filepath is not None:
        img.filepath = filepath
    return img


def link_library(path, relpath, collection):
    """Link `collection` from the .blend at `path` into the scene, the library named
    by `relpath` (as the artist would see it in the file)."""
    with bpy.data.libraries.load(str(path), link=True, relative=True) as (_, dst):
        dst.collections = [collection]
    for coll in dst.collections:
        bpy.context.scene.collection.children.link(coll)
    for lib in bpy.data.libraries:
        if Path(bpy.path.abspath(lib.filepath)).resolve() == path.resolve():
            lib.filepath = relpath


def animated_grid(name):
    """A grid whose vertices move with a shape key over frames 1-3 (a deforming mesh:
    the exporters write it as time samples, the importers read it back live)."""
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=3, y_subdivisions=3, size=1.5)
    obj = bpy.context.active_object
    obj.name = name
    obj.shape_key_add(name="Basis")
    moved = obj.shape_key_add(name="Moved")
    for point in moved.data:
        point.co.x += 1.2
        point.co.y *= 0.5
    moved.value = 0.0
    moved.keyframe_insert("value", frame=1)
    moved.value = 1.0
    moved.keyframe_insert("value", frame=3)
    return obj
