"""Drive the installed add-on inside a real Blender, as an artist would.

    blender -b --factory-startup --python-exit-code 1 --python addon_driver.py -- plan.json
    python addon_driver.py -- plan.json        # PyPI's bpy (Blender 5 as a module)

plan.json: {"zip", "mode": "legacy" | "extension", "url", "token", "out", "steps": [...]}
Each step is a dict with "do":
  open {path}            open a .blend
  new                    a new, never saved file
  exec {code}            run Python (names: bpy, props = scene.brender, prefs); Python
                         edits do not mark the file modified, bpy.ops.ed.undo_push() does
  prefs {url?, token?}   set the add-on preferences
  test_connection        run brender.test_connection
  submit {save_first?, allow_missing?}   run brender.submit
  wait {timeout}         follow the submitted shot until it ends (runtime.wait_for_shot)
  dashboard              run brender.open_dashboard
  movie                  run brender.open_movie
  dismiss_missing        run brender.dismiss_missing (Cancel, after missing files)
  draw                   draw the Output panel, its Overrides and Nodes sub-panels and
                         the preferences into a recording layout that checks every
                         property, operator and icon exists
Results (one dict per step, plus the add-on's module name) go to "out" as JSON;
the pytest side makes the assertions.
"""
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

import bpy

argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
plan = json.loads(Path(argv[0]).read_text())
results = {"steps": [], "blender": bpy.app.version_string}


def install():
    zip_path = plan["zip"]
    if plan["mode"] == "extension":
        bpy.ops.extensions.package_install_files(
            filepath=zip_path, repo="user_default", enable_on_install=True)
        module = "bl_ext.user_default.brender_addon"
    else:
        bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
        bpy.ops.preferences.addon_enable(module="brender_addon")
        module = "brender_addon"
    if module not in bpy.context.preferences.addons:
        raise RuntimeError(f"{module} is not enabled; enabled: {list(bpy.context.preferences.addons.keys())}")
    results["module"] = module
    results["module_file"] = sys.modules[module].__file__
    return module


module = install()
runtime = sys.modules[module + ".runtime"]
state = runtime.state


def prefs():
    return bpy.context.preferences.addons[module].preferences


def snapshot(extra):
    out = {
        "last_error": state.last_error,
        "last_info": state.last_info,
        "shot": state.shot,
        "connection_text": state.connection_text,
        "connection_error": state.connection_error,
        "thumbnail_path": state.thumbnail_path,
        "thumbnail_frame": state.thumbnail_frame,
        "thumbnail_icon": state.thumbnail_icon,
        "missing": list(state.missing),
        "dirty": bpy.data.is_dirty,
        "filepath": bpy.data.filepath,
        "reports": [list(r) for r in getattr(state, "reports", [])],
    }
    out.update(extra)
    return out


class RecordingLayout:
    """Stands in for bpy.types.UILayout (there is no UI under -b): records what
    the panel draws and checks it against Blender's RNA, as drawing would."""

    icons = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())

    def __init__(self, log):
        self.log = log

    settable = set(bpy.types.UILayout.bl_rna.properties.keys())

    def __setattr__(self, name, value):
        if name != "log" and name not in self.settable:
            raise AttributeError(f"UILayout has no attribute {name}")
        object.__setattr__(self, name, value)

    def _icon(self, icon):
        if icon not in self.icons:
            raise ValueError(f"unknown icon {icon!r}")

    def _sub(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = _sub

    def prop(self, data, name, text=None, icon="NONE", **kwargs):
        self._icon(icon)
        if name not in data.bl_rna.properties.keys():
            raise KeyError(f"{data.bl_rna.identifier} has no property {name!r}")
        self.log.append(["prop", name, text])

    def label(self, text="", icon="NONE", **kwargs):
        self._icon(icon)
        self.log.append(["label", text, icon])

    def operator(self, idname, text=None, icon="NONE", **kwargs):
        self._icon(icon)
        module, name = idname.split(".")
        if not hasattr(getattr(bpy.ops, module), name):
            raise KeyError(f"no operator {idname}")
        entry = ["operator", idname, text]
        self.log.append(entry)
        return OperatorProperties(idname, entry)

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(["progress", round(factor, 3), text])

    def template_icon(self, icon_value=0, scale=1.0):
        self.log.append(["icon", icon_value])


class OperatorProperties:
    """What layout.operator() returns: setting a property it lacks fails, as in Blender."""

    def __init__(self, idname, entry):
        module, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        object.__setattr__(self, "_names", set(rna.properties.keys()))
        object.__setattr__(self, "_entry", entry)

    def __setattr__(self, name, value):
        if name not in self._names:
            raise AttributeError(f"operator has no property {name}")
        self._entry.append({name: value})


class Proxy:
    """`self` for a draw() called outside Blender's UI: a layout plus the real object."""

    def __init__(self, real, layout):
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "layout", layout)

    def __getattr__(self, name):
        value = getattr(type(self._real), name, None)
        if callable(value) and not isinstance(value, type):
            return lambda *a, **k: value(self, *a, **k)
        return getattr(self._real, name)


def draw_everything():
    log = []
    panel_cls = getattr(bpy.types, "BRENDER_PT_output")
    ns = Proxy(bpy.context.scene, RecordingLayout(log))
    for name in dir(panel_cls):          # the panel's own draw_* helpers, bound to ns
        if name.startswith("draw_"):
            method = getattr(panel_cls, name)
            object.__setattr__(ns, name, lambda *a, method=method: method(ns, *a))
    panel_cls.draw(ns, bpy.context)
    log.append(["--- overrides"])
    overrides_cls = getattr(bpy.types, "BRENDER_PT_overrides")
    overrides_cls.draw(Proxy(bpy.context.scene, RecordingLayout(log)), bpy.context)
    log.append(["--- nodes"])
    nodes_cls = getattr(bpy.types, "BRENDER_PT_nodes")
    nodes_cls.draw(Proxy(bpy.context.scene, RecordingLayout(log)), bpy.context)
    log.append(["--- preferences"])
    real = prefs()
    type(real).draw(Proxy(real, RecordingLayout(log)), bpy.context)
    return log


prefs().url = plan["url"]
prefs().token = plan["token"]
prefs().poll_interval = 0.5

for step in plan["steps"]:
    kind = step["do"]
    extra = {"do": kind}
    try:
        if kind == "open":
            bpy.ops.wm.open_mainfile(filepath=step["path"])
        elif kind == "new":
            bpy.ops.wm.read_homefile(use_empty=False)
        elif kind == "exec":
            exec(step["code"], {"bpy": bpy, "props": bpy.context.scene.brender, "prefs": prefs()})
        elif kind == "prefs":
            for key in ("url", "token"):
                if key in step:
                    setattr(prefs(), key, step[key])
        elif kind == "test_connection":
            extra["result"] = sorted(bpy.ops.brender.test_connection())
        elif kind == "submit":
            state.shot = None
            started = time.monotonic()
            extra["result"] = sorted(bpy.ops.brender.submit(
                save_first=step.get("save_first", False), allow_missing=step.get("allow_missing", False)))
            extra["seconds"] = time.monotonic() - started
        elif kind == "wait":
            shot = runtime.wait_for_shot(step.get("timeout", 60))
            extra["status"] = shot and shot.get("status")
            if state.thumbnail_path:     # the add-on deletes its temp files when Blender quits
                keep = Path(plan["out"]).parent / ("thumbnail" + Path(state.thumbnail_path).suffix)
                shutil.copyfile(state.thumbnail_path, keep)
                extra["thumbnail_copy"] = str(keep)
        elif kind == "draw":
            extra["drawn"] = draw_everything()
        elif kind == "dismiss_missing":
            extra["result"] = sorted(bpy.ops.brender.dismiss_missing())
        elif kind == "dashboard":
            extra["result"] = sorted(bpy.ops.brender.open_dashboard())
            extra["url"] = state.dashboard_url
        elif kind == "movie":
            extra["result"] = sorted(bpy.ops.brender.open_movie())
            extra["url"] = state.movie_url
        else:
            raise ValueError(f"unknown step {kind}")
    except RuntimeError as err:
        if kind in ("submit", "test_connection") and str(err).startswith("Error:"):
            # bpy.ops raises when an operator reports an ERROR; the operator cancelled.
            extra["result"] = ["CANCELLED"]
            extra["report"] = str(err)
        else:
            extra["exception"] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
    except Exception as err:
        extra["exception"] = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    results["steps"].append(snapshot(extra))
    print("BRENDER-STEP", json.dumps(results["steps"][-1], default=str), flush=True)

runtime.stop_watching()
Path(plan["out"]).write_text(json.dumps(results, indent=1, default=str))
print("BRENDER-DRIVER-DONE", flush=True)
