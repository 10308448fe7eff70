"""The add-on in Blender 3.4's real UI (under Xvfb): Submit as a click does it.

Covers what `blender -b` cannot: the modal operator that keeps Blender's event
loop running while the worker thread packs and uploads, the bpy.app.timers
callback that refreshes the panel, and the thumbnail shown in the panel.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.farm import BLENDER

from .conftest import IN_CI, SCRIPTS, blender_env, colour_fractions

pytestmark = pytest.mark.blender


def test_submit_button_keeps_the_ui_alive_and_shows_the_thumbnail(farm_factory, addon_zip, project,
                                                                 tmp_path):
    if shutil.which("xvfb-run") is None:
        if IN_CI:
            pytest.fail("xvfb-run is missing: .ci/setup_addon.sh should have installed xvfb")
        pytest.skip("xvfb-run is not installed (apt-get install xvfb)")
    farm = farm_factory(nodes=1)
    shutil.copytree(project["blend"].parent, tmp_path / "project")
    home = tmp_path / "home"
    env = blender_env(home)
    env["TMPDIR"] = str(home)
    plan = {"zip": str(addon_zip), "url": farm.url, "token": farm.token, "timeout": 120,
            "out": str(tmp_path / "out.json"), "screenshot": str(tmp_path / "screenshot.png")}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", BLENDER, "--factory-startup",
         str(tmp_path / "project" / "shot.blend"), "--python", str(SCRIPTS / "gui_driver.py"),
         "--", str(tmp_path / "plan.json")],
        env=env, capture_output=True, text=True, timeout=300, cwd=home)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["error"] is None, out["error"]
    assert out["submit"] == ["RUNNING_MODAL"]                # the modal path, not the -b one
    assert out["after_submit"]["last_error"] == "", out["after_submit"]
    # Blender's own timer kept firing while the job packed and uploaded.
    assert out["ticks_while_submitting"] >= 3, out
    assert out["max_gap"] < 2.0, out
    assert out["shot"]["name"] == "gui-shot" and out["shot"]["status"] == "completed"
    assert out["thumbnail_icon"] > 0 and out["thumbnail_frame"] == 1
    # The screenshot shows the panel's thumbnail: the checker and the linked cube.
    colours = colour_fractions(Path(plan["screenshot"]))
    assert colours["red"] > 0.0005 and colours["green"] > 0.002, colours     # ~160x90 px of 1280x900
