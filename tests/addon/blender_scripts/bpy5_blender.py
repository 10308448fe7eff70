"""A `blender` command line made of PyPI's bpy, so a real node can render with
Blender 5 in tests (Debian ships Blender 3.4, which cannot open 5.x files).

    /opt/brender-bpy5/bin/python bpy5_blender.py --version
    /opt/brender-bpy5/bin/python bpy5_blender.py -b --factory-startup \
        --disable-autoexec FILE.blend --python-exit-code 1 --python SCRIPT -- ARGS

Understands the options the node agent passes (node/blender.py): open FILE, then
run SCRIPT as __main__ with sys.argv ending in `-- ARGS`, exit with the
--python-exit-code when it raises.
"""
import runpy
import sys
import traceback

args = sys.argv[1:]
if "--version" in args:
    import bpy
    print(f"Blender {bpy.app.version_string}", flush=True)
    sys.exit(0)

blend = script = None
exit_code = 0
autoexec = False
i = 0
while i < len(args):
    arg = args[i]
    if arg == "--":
        break
    if arg in ("-b", "--background", "--factory-startup"):
        pass
    elif arg in ("--enable-autoexec", "-y"):
        autoexec = True
    elif arg in ("--disable-autoexec", "-Y"):
        autoexec = False
    elif arg == "--python-exit-code":
        exit_code = int(args[i + 1])
        i += 1
    elif arg in ("--python", "-P"):
        script = args[i + 1]
        i += 1
    elif arg.startswith("-"):
        sys.exit(f"bpy5_blender: unsupported option {arg}")
    else:
        blend = arg
    i += 1

import bpy  # noqa: E402  (slow: only once the arguments are understood)

if blend:
    bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False, use_scripts=autoexec)
if script:
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(exit_code)
