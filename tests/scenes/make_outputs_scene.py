"""Add extra outputs to a test scene: `blender -b BASE.blend --factory-startup --python
make_outputs_scene.py -- OUT [JSON]`.

Options (JSON): passes (true: a compositor with two File Output nodes, "Passes PNG"
with slots "beauty_" and "sub/depth_###" writing relative to the file, and "Passes EXR",
an OPEN_EXR node with one slot "mist_"; `exr_base` sets that node's base path, default
"//passes_exr/", `exr_codec` its codec), multilayer (true: "Passes Multi", a multilayer
EXR node at "//multi/layers_" with layers "Image" and "Mist"), group (true: a node group
"Comp Group" holding a File Output node "Inner" writing PNG "inner_"), slot_format (true:
a PNG node "Per Slot" whose slot "as_jpeg_" has its own format, JPEG), stereo (true:
multiview stereo 3D written as individual views).
"""
import json
import sys

import bpy

argv = sys.argv[sys.argv.index("--") + 1:]
out = argv[0]
opts = json.loads(argv[1]) if len(argv) > 1 else {}
scene = bpy.context.scene

if opts.get("passes"):
    scene.view_layers[0].use_pass_z = True
    scene.view_layers[0].use_pass_mist = True
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes["Render Layers"]
    png = tree.nodes.new("CompositorNodeOutputFile")
    png.name = png.label = "Passes PNG"
    png.base_path = "//passes_png/"
    png.format.file_format = "PNG"
    png.format.color_mode = "RGBA"
    png.file_slots[0].path = "beauty_"
    png.file_slots.new("sub/depth_###")
    tree.links.new(layers.outputs["Image"], png.inputs[0])
    normalize = tree.nodes.new("CompositorNodeNormalize")
    tree.links.new(layers.outputs["Depth"], normalize.inputs[0])
    tree.links.new(normalize.outputs[0], png.inputs[1])
    exr = tree.nodes.new("CompositorNodeOutputFile")
    exr.name = exr.label = "Passes EXR"
    exr.base_path = opts.get("exr_base", "//passes_exr/")
    exr.format.file_format = "OPEN_EXR"
    exr.format.color_depth = "32"
    exr.format.exr_codec = opts.get("exr_codec", "ZIP")
    exr.file_slots[0].path = "mist_"
    tree.links.new(layers.outputs["Mist"], exr.inputs[0])

if opts.get("multilayer") or opts.get("group") or opts.get("slot_format"):
    scene.view_layers[0].use_pass_mist = True
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes["Render Layers"]

if opts.get("multilayer"):
    multi = tree.nodes.new("CompositorNodeOutputFile")
    multi.name = multi.label = "Passes Multi"
    multi.base_path = "//multi/layers_"
    multi.format.file_format = "OPEN_EXR_MULTILAYER"
    multi.layer_slots[0].name = "Image"
    multi.layer_slots.new("Mist")
    tree.links.new(layers.outputs["Image"], multi.inputs[0])
    tree.links.new(layers.outputs["Mist"], multi.inputs[1])

if opts.get("group"):
    group = bpy.data.node_groups.new("Comp Group", "CompositorNodeTree")
    group.inputs.new("NodeSocketColor", "Image")
    group_in = group.nodes.new("NodeGroupInput")
    inner = group.nodes.new("CompositorNodeOutputFile")
    inner.name = "Inner"
    inner.base_path = "//grouped/"
    inner.format.file_format = "PNG"
    inner.file_slots[0].path = "inner_"
    group.links.new(group_in.outputs["Image"], inner.inputs[0])
    instance = tree.nodes.new("CompositorNodeGroup")
    instance.name = "Comp Group"
    instance.node_tree = group
    tree.links.new(layers.outputs["Image"], instance.inputs["Image"])

if opts.get("slot_format"):
    per_slot = tree.nodes.new("CompositorNodeOutputFile")
    per_slot.name = "Per Slot"
    per_slot.base_path = "//perslot/"
    per_slot.format.file_format = "PNG"
    slot = per_slot.file_slots[0]
    slot.path = "as_jpeg_"
    slot.use_node_format = False
    slot.format.file_format = "JPEG"
    tree.links.new(layers.outputs["Image"], per_slot.inputs[0])

if opts.get("stereo"):
    scene.render.use_multiview = True
    scene.render.views_format = "STEREO_3D"
    scene.render.image_settings.views_format = "INDIVIDUAL"
    camera = scene.camera
    camera.data.stereo.interocular_distance = 0.3

bpy.ops.wm.save_as_mainfile(filepath=out, relative_remap=True)
