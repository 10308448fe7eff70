"""Write a small OpenVDB file (a ball of "density", 0.1 voxels) with the openvdb
module that PyPI's bpy 5 ships. Blender cannot make one here otherwise: its smoke
bake (Mantaflow) fails in Debian's 3.4 and in bpy 5 alike
("'LevelsetGrid' object has no attribute 'setConst'").

    /opt/brender-bpy5/bin/python make_vdb.py -- OUT.vdb
"""
import os
import sys

import bpy

sys.path.append(os.path.join(bpy.utils.resource_path("LOCAL"), "python", "lib",
                             "python%d.%d" % sys.version_info[:2], "site-packages"))
import openvdb  # noqa: E402  (found only once bpy's own site-packages is on the path)

out = sys.argv[sys.argv.index("--") + 1]
os.makedirs(os.path.dirname(out), exist_ok=True)
grid = openvdb.FloatGrid()
grid.name = "density"
grid.transform = openvdb.createLinearTransform(voxelSize=0.1)
cells = grid.getAccessor()
for x in range(-6, 7):
    for y in range(-6, 7):
        for z in range(-3, 4):
            if x * x + y * y + 4 * z * z <= 36:
                cells.setValueOn((x, y, z), 1.0 if (x // 2 + y // 2) % 2 else 0.25)
openvdb.write(out, grids=[grid])
print("VDB", out, flush=True)
# openvdb's nanobind module reports leaks at interpreter exit; skip that teardown.
os._exit(0)
