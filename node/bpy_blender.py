"""A `blender` command line made of PyPI's `bpy` module, so a node can render with a
bpy venv: `brender-node --blender /opt/bpy5/bin/python` runs

    PYTHON bpy_blender.py -b --factory-startup --disable-autoexec FILE.blend \
        --python-exit-code 1 --python SCRIPT -- ARGS

Understands the options the node passes (node/blender.py, node/installs.py): open FILE,
then run SCRIPT as __main__ with sys.argv ending in `-- ARGS`, exit with the
--python-exit-code when it raises. `--version` prints "Blender X.Y.Z" as Blender does.
"""
import runpy
import sys
import traceback


def main(args: list[str]) -> None:
    if "--version" in args[:args.index("--") if "--" in args else len(args)]:
        import bpy
        print(f"Blender {bpy.app.version_string}", flush=True)
        return
    blend = script = None
    exit_code = 0
    autoexec = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg in ("-b", "--background", "--factory-startup"):
            pass  # the bpy module has no window and no user preferences to skip
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
            sys.exit(f"bpy_blender: unsupported option {arg}")
        else:
            blend = arg
        i += 1

    import bpy  # slow: only once the arguments are understood

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


if __name__ == "__main__":
    main(sys.argv[1:])
