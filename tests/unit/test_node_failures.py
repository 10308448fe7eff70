"""The node names why a render failed from Blender's log, in words an artist can act on."""
from __future__ import annotations

import json

import pytest

from node.failures import classify

SETTINGS = "BRENDER_SETTINGS " + json.dumps({"scene": "Shot_010", "output_format": "FFMPEG"})

NO_CAMERA = [  # blender_driver.py rendering a scene without a camera (Blender 3.4)
    "Read blend: /w/projects/f/1/shot.blend", SETTINGS,
    'BRENDER_READY {"blender": "3.4.1", "file": "/w/projects/f/1/shot.blend"}',
    'BRENDER_ERROR {"error": "RuntimeError: Error: Cannot render, no camera\\n"}',
    "Traceback (most recent call last):",
    '  File "/node/blender_driver.py", line 115, in <module>',
    "    main()",
    '  File "/usr/share/blender/scripts/modules/bpy/ops.py", line 113, in __call__',
    "    ret = _op_call(self.idname_py(), None, kw)",
    "          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    "RuntimeError: Error: Cannot render, no camera", "",
    "Error: script failed, file: '/node/blender_driver.py', exiting."]


def test_no_camera_names_the_scene():
    assert classify(NO_CAMERA, 1) == "no camera in scene 'Shot_010'"


def test_the_scene_comes_from_the_sessions_settings_when_the_log_rolled_past_them():
    lines = [ln for ln in NO_CAMERA if not ln.startswith("BRENDER_SETTINGS")]
    assert classify(lines, 1, {"scene": "Other"}) == "no camera in scene 'Other'"
    assert classify(lines, 1) == "no camera in the scene"


def test_a_python_error_is_its_exception_line_not_the_traceback_header():
    lines = ["Traceback (most recent call last):",
             '  File "/text/rig.py", line 3, in <module>', "    import missing_addon",
             "ModuleNotFoundError: No module named 'missing_addon'",
             "Error: script failed"]
    assert classify(lines, 1) == \
        "Python error: ModuleNotFoundError: No module named 'missing_addon'"


def test_the_last_of_chained_tracebacks_is_the_one_named():
    lines = ["Traceback (most recent call last):", '  File "a.py", line 1', "KeyError: 'x'",
             "", "During handling of the above exception, another exception occurred:", "",
             "Traceback (most recent call last):", '  File "a.py", line 3',
             "ValueError: bad frame"]
    assert classify(lines, 1) == "Python error: ValueError: bad frame"


@pytest.mark.parametrize("line, path", [
    ("Error: Cannot read file '/w/projects/f/1/shot.blend': No such file or directory",
     "/w/projects/f/1/shot.blend"),
    ("FileNotFoundError: [Errno 2] No such file or directory: '/tex/wood.png'",
     "/tex/wood.png"),
])
def test_a_missing_file_is_named(line, path):
    assert classify(["Blender 3.4.1", line, "Blender quit"], 1) == f"missing file: {path}"


def test_a_file_blender_cannot_read_is_not_called_missing():
    lines = ["Error: Cannot read file '/w/shot.blend': File format is not supported",
             "Blender quit"]
    assert classify(lines, 1) == \
        "cannot read file: /w/shot.blend (File format is not supported)"
    corrupt = ["Error: Failed to read blend file '/w/shot.blend': Missing DNA block"]
    assert classify(corrupt, 1) == "cannot read file: /w/shot.blend (Missing DNA block)"


@pytest.mark.parametrize("line", ["Error: Malloc returns null: len=1073741824 in ...",
                                  "CUDA error: Out of memory in cuMemAlloc",
                                  "terminate called after throwing std::bad_alloc",
                                  "Killed"])
def test_out_of_memory(line):
    assert classify(["Fra:1 Mem:12000M", line], -9) == "out of memory"


def test_a_movie_format_names_the_format():
    lines = [SETTINGS, "RuntimeError: Error: Cannot write a single file with an animation "
                       "format selected"]
    assert classify(lines, 1) == \
        "movie output format FFMPEG cannot be rendered frame by frame"


def test_the_drivers_own_reason_wins():
    lines = ['BRENDER_FAILED {"reason": "render.scene: no scene \'X\' in the file"}',
             "Traceback (most recent call last):", "SystemExit: 1"]
    assert classify(lines, 1) == "render.scene: no scene 'X' in the file"


def test_crashes_and_exit_codes():
    assert classify(["Segmentation fault (core dumped)"], -11) == \
        "Blender crashed: Segmentation fault (core dumped)"
    assert classify(["Fra:1 Mem:10M"], -11) == "Blender crashed: killed by signal SIGSEGV"
    assert classify([], 3) == "Blender exited with code 3"
    assert classify([], 0) == "Blender stopped unexpectedly"
