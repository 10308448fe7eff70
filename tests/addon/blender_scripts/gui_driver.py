"""Drive the add-on in Blender's real UI (under Xvfb): the modal submit path.

    xvfb-run blender --factory-startup shot.blend --python gui_driver.py -- plan.json

plan.json: {"zip", "url", "token", "out", "screenshot", "timeout"}. Installs and
enables the add-on, presses Submit in the Properties editor (INVOKE, as a click
does), and, from a timer ticking every 50 ms, records whether Blender's event
loop kept running during packing and upload (the UI must not freeze), then
follows the shot until it ends and its thumbnail is loaded, takes a screenshot
and quits. The results go to "out" as JSON.
"""
import json
import sys
import time
import traceback
from pathlib import Path

import bpy

argv = sys.argv[sys.argv.index("--") + 1:]
plan = json.loads(Path(argv[0]).read_text())
results = {"ticks_while_submitting": 0, "max_gap": 0.0, "error": None}

bpy.ops.preferences.addon_install(filepath=plan["zip"], overwrite=True)
bpy.ops.preferences.addon_enable(module="brender_addon")
prefs = bpy.context.preferences.addons["brender_addon"].preferences
prefs.url = plan["url"]
prefs.token = plan["token"]
prefs.poll_interval = 0.5
runtime = sys.modules["brender_addon.runtime"]
state = runtime.state
settings = bpy.context.scene.brender
settings.shot_name = "gui-shot"
settings.use_scene_range = False
settings.frame_start = settings.frame_end = 1


def properties_area():
    window = bpy.context.window_manager.windows[0]
    for area in window.screen.areas:
        if area.type == "PROPERTIES":
            region = next(r for r in area.regions if r.type == "WINDOW")
            return window, area, region
    raise RuntimeError("no Properties editor")


def finish():
    Path(plan["out"]).write_text(json.dumps(results, indent=1, default=str))
    bpy.ops.wm.quit_blender()


def driver():
    window, area, region = properties_area()
    area.spaces.active.context = "OUTPUT"
    with bpy.context.temp_override(window=window, area=area, region=region):
        bpy.ops.screen.screen_full_area()      # the whole window is the Output tab
    yield 0.5
    window, area, region = properties_area()
    with bpy.context.temp_override(window=window, area=area, region=region):
        results["submit"] = sorted(bpy.ops.brender.submit("INVOKE_DEFAULT"))
    last = time.monotonic()
    while state.submitting:
        now = time.monotonic()
        results["ticks_while_submitting"] += 1
        results["max_gap"] = max(results["max_gap"], now - last)
        last = now
        yield 0.05
    results["after_submit"] = {"last_error": state.last_error, "last_info": state.last_info}
    deadline = time.monotonic() + plan.get("timeout", 120)
    while time.monotonic() < deadline:
        shot = state.shot or {}
        if shot.get("status") in ("completed", "failed", "cancelled") and state.thumbnail_icon:
            break
        yield 0.2
    results["shot"] = state.shot
    results["thumbnail_icon"] = state.thumbnail_icon
    results["thumbnail_frame"] = state.thumbnail_frame
    results["timer_registered"] = bpy.app.timers.is_registered(runtime.drain)
    for area in bpy.context.window_manager.windows[0].screen.areas:
        area.tag_redraw()
    window, area, region = properties_area()
    with bpy.context.temp_override(window=window, area=area, region=region):
        for _ in range(6):                      # scroll down to the Brender panel
            bpy.ops.view2d.scroll_down(page=True)
    yield 1.0                                   # let the panel draw its final state
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window):
        bpy.ops.screen.screenshot(filepath=plan["screenshot"])
    yield None


steps = driver()


def tick():
    try:
        delay = next(steps)
    except StopIteration:
        delay = None
    except Exception:
        results["error"] = traceback.format_exc()
        delay = None
    if delay is None:
        finish()
    return delay


bpy.app.timers.register(tick, first_interval=1.0)
