"""Build the dependency corpus: an artist's project whose shots each use one kind
of external file, every file made here by Blender (or ffmpeg, for the movie).

    blender -b --factory-startup --python-exit-code 1 --python make_corpus.py -- '{"root": R}'
    /opt/brender-bpy5/bin/python make_corpus.py -- '{"root": R}'     # Blender 5 (bpy)

Layout under R (the project is R/artist, the folder the shots sit in, as
brender-submit takes it):
    library/lib_a.blend              linked by the shots as //../library/lib_a.blend
    library/tex_a.png                lib_a's texture, //tex_a.png
    library/lib_b/lib_b.blend        linked by lib_a.blend as //lib_b/lib_b.blend
    library/lib_b/tex/blue.png       lib_b's texture, //tex/blue.png
    artist/<case>.blend              one shot per case (see CASES)
    artist/textures/...              relative, absolute, UDIM, sequence, "café été/"
    artist/footage/take 1.mkv        a movie made by ffmpeg
    artist/blendcache_point_cache/   a baked particle cache, where Blender puts it
    artist/bakes/dust/               a particle cache moved to a bake folder (external cache)
    artist/volumes/ball.vdb          made beforehand by make_vdb.py (bpy 5's openvdb)
    artist/bakes/grid/               a Geometry Nodes bake (Blender 5 only)
    artist/caches/anim.abc, anim.usdc   Blender 5 only (Debian's 3.4 has neither)
Writes R/manifest.json: {case: {"blend", "frame", "deps": [file names the
pack must carry]}}. Renders are tiny, 1-4 samples, no denoising, fixed seed, film
transparent, PNG RGBA 8 bit (so alpha is compared too).
"""
import json
import subprocess
import sys
from pathlib import Path

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scene_kit import (BLENDER5, animated_grid, base_scene, checker, emission_material,  # noqa: E402
                       empty_file, image, link_library, node_material, plane, save_as, save_png)

argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
opts = json.loads(argv[0])
ROOT = Path(opts["root"]).absolute()
ARTIST = ROOT / "artist"
LIBRARY = ROOT / "library"
TEXTURES = ARTIST / "textures"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CASES = {}
manifest = {}


def case(*, blender5=True, blender34=True):
    def register(fn):
        if (blender5 and BLENDER5) or (blender34 and not BLENDER5):
            CASES[fn.__name__] = fn
        return fn
    return register


def start(name):
    """An empty file saved where the shot goes, so `//` paths resolve from the start."""
    empty_file()
    save_as(ARTIST / f"{name}.blend")


def shot(name, frame=1, deps=()):
    path = ARTIST / f"{name}.blend"
    save_as(path)
    manifest[name] = {"blend": str(path), "frame": frame, "deps": list(deps)}


def textured_shot(name, engine):
    start(name)
    base_scene(engine)
    mat, _ = emission_material("Floor", image(TEXTURES / "rel.png", "//textures/rel.png"))
    plane("Floor", 3.0, (0, 0, 0), mat)
    link_library(LIBRARY / "lib_a.blend", "//../library/lib_a.blend", "SetA")
    shot(name, deps=["rel.png", "lib_a.blend", "tex_a.png", "lib_b.blend", "blue.png"])


# -- the library chain: lib_b.blend -> lib_a.blend -> shots ------------------
def make_libraries():
    save_png(LIBRARY / "lib_b" / "tex" / "blue.png", 4, 4,
             checker((0.1, 0.2, 0.9, 1.0), (0.0, 0.9, 0.9, 1.0), 1))
    empty_file()
    save_as(LIBRARY / "lib_b" / "lib_b.blend")
    mat, _ = emission_material("PropBMaterial",
                               image(LIBRARY / "lib_b" / "tex" / "blue.png", "//tex/blue.png"))
    plane("PropB", 0.8, (1.0, 0.5, 0.1), mat)
    save_as(LIBRARY / "lib_b" / "lib_b.blend")

    save_png(LIBRARY / "tex_a.png", 4, 4, checker((0.9, 0.1, 0.05, 1.0), (0.9, 0.9, 0.1, 1.0), 1))
    empty_file()
    save_as(LIBRARY / "lib_a.blend")
    coll = bpy.data.collections.new("SetA")
    bpy.context.scene.collection.children.link(coll)
    mat, _ = emission_material("PropAMaterial", image(LIBRARY / "tex_a.png", "//tex_a.png"))
    prop_a = plane("PropA", 0.8, (-1.0, 0.5, 0.1), mat)
    for c in prop_a.users_collection:
        c.objects.unlink(prop_a)
    coll.objects.link(prop_a)
    with bpy.data.libraries.load(str(LIBRARY / "lib_b" / "lib_b.blend"), link=True,
                                 relative=True) as (src, dst):
        dst.objects = ["PropB"]
    coll.objects.link(dst.objects[0])
    bpy.data.libraries[0].filepath = "//lib_b/lib_b.blend"
    save_as(LIBRARY / "lib_a.blend")


# -- the cases ---------------------------------------------------------------
@case()
def libraries():
    """Two levels of linked libraries, the first one in ../ (outside the project)."""
    textured_shot("libraries", "CYCLES")


@case()
def texture_paths():
    """Relative, absolute (inside the project) and space/non-ASCII texture paths;
    the .blend's own name has them too."""
    save_png(TEXTURES / "abs.png", 4, 4, checker((0.9, 0.5, 0.1, 1.0), (0.2, 0.1, 0.0, 1.0), 1))
    odd = save_png(TEXTURES / "café été" / "tuile ø 1.png", 4, 4,
                   checker((0.6, 0.1, 0.9, 1.0), (1.0, 1.0, 1.0, 1.0), 1))
    start("texture paths é")
    base_scene()
    plane("Rel", 1.2, (-1.3, 0, 0), emission_material(
        "Rel", image(TEXTURES / "rel.png", "//textures/rel.png"))[0])
    plane("Abs", 1.2, (0, 0, 0), emission_material(
        "Abs", image(TEXTURES / "abs.png", str(TEXTURES / "abs.png")))[0])
    plane("Odd", 1.2, (1.3, 0, 0), emission_material(
        "Odd", image(odd, "//textures/café été/tuile ø 1.png"))[0])
    shot("texture paths é", deps=["rel.png", "abs.png", "tuile ø 1.png"])


@case()
def udim():
    """A UDIM image: tiles 1001 and 1002 side by side on one plane."""
    save_png(TEXTURES / "udim" / "paint.1001.png", 4, 4, checker((0.9, 0.2, 0.2, 1), (0.2, 0.2, 0.2, 1)))
    save_png(TEXTURES / "udim" / "paint.1002.png", 4, 4, checker((0.2, 0.9, 0.2, 1), (0.9, 0.9, 0.9, 1)))
    start("udim")
    base_scene()
    img = image(TEXTURES / "udim" / "paint.1001.png")
    img.source = "TILED"
    img.filepath = "//textures/udim/paint.<UDIM>.png"
    if len(img.tiles) < 2:
        img.tiles.new(tile_number=1002)
    floor = plane("Floor", 2.0, (0, 0, 0), emission_material("Udim", img)[0], scale=(1.8, 0.9, 1))
    for loop in floor.data.uv_layers.active.data:
        loop.uv = (loop.uv[0] * 2.0, loop.uv[1])
    shot("udim", deps=["paint.1001.png", "paint.1002.png"])


@case()
def image_sequence():
    """An image sequence texture; frame 2 shows seq_0002.png."""
    for n in (1, 2, 3):
        save_png(TEXTURES / "seq" / f"seq_{n:04d}.png", 4, 4,
                 checker((n / 3, 0.2, 1 - n / 3, 1), (0.1, n / 4, 0.1, 1), n))
    start("image_sequence")
    base_scene()
    img = image(TEXTURES / "seq" / "seq_0001.png", "//textures/seq/seq_0001.png")
    img.source = "SEQUENCE"
    mat, tex = emission_material("Seq", img)
    tex.image_user.frame_duration = 3
    tex.image_user.frame_start = 1
    tex.image_user.use_auto_refresh = True
    plane("Floor", 3.0, (0, 0, 0), mat)
    shot("image_sequence", frame=2, deps=["seq_0001.png", "seq_0002.png", "seq_0003.png"])


def make_movie():
    movie = ARTIST / "footage" / "take 1.mkv"
    if movie.exists():
        return movie
    movie.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=48x32:rate=24:duration=0.25", "-c:v", "ffv1",
                    "-pix_fmt", "yuv444p", str(movie)], check=True)
    return movie


@case()
def movie_clip():
    """A movie clip (ffmpeg) through the compositor's Movie Clip node, frame 2."""
    movie = make_movie()
    start("movie_clip")
    scene = base_scene()
    clip = bpy.data.movieclips.load(str(movie))
    clip.filepath = "//footage/take 1.mkv"
    scene.render.use_compositing = True
    if BLENDER5:   # the compositor is a node group whose output is the render
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        output = tree.nodes.new("NodeGroupOutput").inputs[0]
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite").inputs["Image"]
    source = tree.nodes.new("CompositorNodeMovieClip")
    source.clip = clip
    tree.links.new(source.outputs["Image"], output)
    shot("movie_clip", frame=2, deps=["take 1.mkv"])


@case()
def sequencer():
    """Sequencer strips: a movie strip under an image-sequence strip (frame 2: seq_0002)."""
    start("sequencer")
    scene = base_scene()
    scene.render.use_sequencer = True
    editor = scene.sequence_editor_create()
    strips = editor.strips if BLENDER5 else editor.sequences
    movie = strips.new_movie("Take", str(make_movie()), 1, 1)
    movie.filepath = "//footage/take 1.mkv"
    strip = strips.new_image("Seq", str(TEXTURES / "seq" / "seq_0001.png"), 2, 1)
    strip.elements.append("seq_0002.png")
    strip.elements.append("seq_0003.png")
    strip.directory = "//textures/seq/"
    strip.blend_type = "ALPHA_OVER"
    strip.transform.scale_x = strip.transform.scale_y = 4.0
    strip.transform.offset_x = 12
    shot("sequencer", frame=2, deps=["take 1.mkv", "seq_0002.png"])


def baked_particles(name):
    """Particles drifting from a plane, baked to a disk cache (frames 1-3)."""
    start(name)                                      # a disk cache needs a saved file
    scene = base_scene()
    dot_mat, _ = emission_material("Dot", color=(1.0, 0.8, 0.2, 1.0))
    dot = plane("Dot", 0.25, (0, 0, -5), dot_mat)
    emitter = plane("Emitter", 3.0, (0, 0, 0))
    emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
    psys = emitter.particle_systems[0]
    settings = psys.settings
    settings.count = 12
    settings.frame_start, settings.frame_end = 1, 1
    settings.lifetime = 50
    settings.normal_factor = 0.0
    settings.factor_random = 2.0
    settings.effector_weights.gravity = 0.0
    settings.render_type = "OBJECT"
    settings.instance_object = dot
    settings.particle_size = 1.0
    emitter.show_instancer_for_render = False
    psys.point_cache.use_disk_cache = True
    psys.point_cache.name = "Dust"
    with bpy.context.temp_override(scene=scene, point_cache=psys.point_cache):
        bpy.ops.ptcache.bake(bake=True)
    cache_dir = ARTIST / f"blendcache_{name}"
    assert any(cache_dir.iterdir()), "the particle bake wrote no cache files"
    return psys.point_cache, cache_dir


@case()
def point_cache():
    """Particles from a disk cache baked here (//blendcache_point_cache/), frame 3."""
    _, cache_dir = baked_particles("point_cache")
    shot("point_cache", frame=3, deps=sorted(p.name for p in cache_dir.iterdir()))


@case()
def external_cache():
    """Particles read from a bake folder, //bakes/dust/ (an external point cache:
    baked, then moved where the artist keeps bakes), frame 3."""
    cache, cache_dir = baked_particles("external_cache")
    folder = ARTIST / "bakes" / "dust"
    folder.mkdir(parents=True, exist_ok=True)
    for path in cache_dir.iterdir():
        path.rename(folder / path.name)
    cache_dir.rmdir()
    cache.use_external = True
    cache.filepath = "//bakes/dust/"
    shot("external_cache", frame=3, deps=sorted(p.name for p in folder.iterdir()))


@case()
def volume():
    """An OpenVDB volume object; the .vdb comes from make_vdb.py (bpy 5's openvdb
    module: Mantaflow cannot bake in Debian's 3.4 nor in PyPI's bpy 5)."""
    vdb = ARTIST / "volumes" / "ball.vdb"
    if not vdb.is_file():
        print("SKIP volume: no", vdb)
        return
    start("volume")
    scene = base_scene()
    if hasattr(scene.cycles, "volume_biased"):   # Blender 5's unbiased volumes: 10 s a frame
        scene.cycles.volume_biased = True
    data = bpy.data.volumes.new("Ball")
    data.filepath = "//volumes/ball.vdb"
    obj = bpy.data.objects.new("Ball", data)
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.scene.collection.objects.link(obj)
    mat = node_material("BallVolume")
    vol = mat.node_tree.nodes.new("ShaderNodeVolumePrincipled")
    vol.inputs["Emission Strength"].default_value = 3.0
    vol.inputs["Emission Color"].default_value = (1.0, 0.5, 0.1, 1.0)
    mat.node_tree.links.new(vol.outputs["Volume"],
                            mat.node_tree.nodes.new("ShaderNodeOutputMaterial").inputs["Volume"])
    data.materials.append(mat)
    shot("volume", deps=["ball.vdb"])


@case()
def font():
    """A text object in DejaVu Sans, by its absolute system path (outside the project)."""
    start("font")
    scene = base_scene()
    curve = bpy.data.curves.new("Title", "FONT")
    curve.body = "Wg&"
    curve.font = bpy.data.fonts.load(str(FONT))
    curve.size = 1.6
    curve.align_x, curve.align_y = "CENTER", "CENTER"
    curve.materials.append(emission_material("Ink", color=(0.9, 0.9, 0.2, 1))[0])
    scene.collection.objects.link(bpy.data.objects.new("Title", curve))
    shot("font", deps=[FONT.name])


@case()
def eevee():
    """Eevee: the textured floor and the linked library chain."""
    textured_shot("eevee", "EEVEE")


@case()
def workbench():
    """Workbench in texture colour mode: the textured floor and the linked library chain."""
    textured_shot("workbench", "BLENDER_WORKBENCH")
    scene = bpy.context.scene
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "TEXTURE"
    save_as(ARTIST / "workbench.blend")


def cache_shot(name, kind):
    cache = ARTIST / "caches" / f"anim.{kind}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    empty_file()
    base_scene()
    animated_grid("Anim")
    if kind == "abc":
        bpy.ops.wm.alembic_export(filepath=str(cache), start=1, end=3, selected=False)
    else:
        bpy.ops.wm.usd_export(filepath=str(cache), export_animation=True, export_shapekeys=False,
                               export_materials=False)
    start(name)
    scene = base_scene()
    scene.frame_set(1)
    if kind == "abc":
        bpy.ops.wm.alembic_import(filepath=str(cache), as_background_job=False)
    else:
        bpy.ops.wm.usd_import(filepath=str(cache))
    mat, _ = emission_material("Cached", color=(0.2, 0.9, 0.5, 1))
    meshes = [o for o in scene.objects if o.type == "MESH"]
    assert meshes, f"the {kind} import made no mesh"
    for obj in meshes:
        assert any(m.type == "MESH_SEQUENCE_CACHE" for m in obj.modifiers), \
            f"{obj.name} does not read the {kind} cache live"
        obj.data.materials.clear()
        obj.data.materials.append(mat)
    for cache_file in bpy.data.cache_files:
        cache_file.filepath = f"//caches/anim.{kind}"
    shot(name, frame=3, deps=[cache.name])


@case(blender34=False)
def bake_folder():
    """A Geometry Nodes bake written to the bake folder //bakes/grid; the mesh is moved
    after baking, so only the baked files give the frame plain Blender renders."""
    start("bake_folder")
    base_scene()
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=3, y_subdivisions=3, size=1.5)
    obj = bpy.context.active_object
    obj.data.materials.append(emission_material("Baked", color=(0.9, 0.3, 0.6, 1))[0])
    tree = bpy.data.node_groups.new("Baked", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    bake = tree.nodes.new("GeometryNodeBake")
    if not bake.bake_items:
        bake.bake_items.new("GEOMETRY", "Geometry")
    tree.links.new(tree.nodes.new("NodeGroupInput").outputs[0], bake.inputs[0])
    tree.links.new(bake.outputs[0], tree.nodes.new("NodeGroupOutput").inputs[0])
    mod = obj.modifiers.new("Bake", "NODES")
    mod.node_group = tree
    mod.bake_directory = "//bakes/grid"
    item = mod.bakes[0]
    item.bake_mode, item.bake_target = "STILL", "DISK"
    with bpy.context.temp_override(object=obj, active_object=obj):
        result = bpy.ops.object.geometry_node_bake_single(
            session_uid=obj.session_uid, modifier_name=mod.name, bake_id=item.bake_id)
    assert result == {"FINISHED"}, result
    for vertex in obj.data.vertices:
        vertex.co.x += 1.0
        vertex.co.y *= 0.3
    baked = sorted(p.name for p in (ARTIST / "bakes" / "grid").rglob("*") if p.is_file())
    assert baked, "the bake wrote nothing"
    shot("bake_folder", deps=baked)


@case(blender34=False)
def alembic():
    """An Alembic cache (exported and re-imported by Blender 5), frame 3."""
    cache_shot("alembic", "abc")


@case(blender34=False)
def usd():
    """A USD cache (exported and re-imported by Blender 5), frame 3."""
    cache_shot("usd", "usdc")


save_png(TEXTURES / "rel.png", 4, 4, checker((0.05, 0.8, 0.1, 1.0), (0.1, 0.2, 0.9, 0.5), 1))
make_libraries()
wanted = opts.get("cases") or list(CASES)
for name in wanted:
    CASES[name]()
(ROOT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
print("CORPUS", ROOT, sorted(manifest))
