"""Which of a node's Blenders renders an assignment, how each is started, --gpus."""
from __future__ import annotations

import argparse

import pytest

from node.cli import gpu_indices
from node.installs import BPY_BLENDER, BlenderInstall, choose, command_for, offered_devices

CPU = {"type": "CPU", "name": "EPYC", "id": "CPU"}
OLD = BlenderInstall("/usr/bin/blender", ("/usr/bin/blender",), "3.4.1", (CPU,))
NEW = BlenderInstall("/opt/b5/bin/python", ("/opt/b5/bin/python", str(BPY_BLENDER)),
                     "5.0.1", (CPU, {"type": "CUDA", "name": "RTX", "id": "CUDA_0"}))
NEWER = BlenderInstall("/opt/b502/blender", ("/opt/b502/blender",), "5.0.2", (CPU,))


def test_a_python_runs_blender_through_the_bpy_shim_anything_else_is_blender():
    assert command_for("/opt/venv/bin/python") == ("/opt/venv/bin/python", str(BPY_BLENDER))
    assert command_for("/opt/venv/bin/python3.11")[1] == str(BPY_BLENDER)
    assert command_for("/opt/blender-5.0/blender") == ("/opt/blender-5.0/blender",)
    assert command_for("/usr/bin/pythonista-renderer") == ("/usr/bin/pythonista-renderer",)


def test_the_assignment_names_the_version_else_its_series_newest_else_the_first():
    installs = [OLD, NEW, NEWER]
    assert choose(installs, "5.0.1") is NEW
    assert choose(installs, "3.4.1") is OLD
    assert choose(installs, "5.0.7") is NEWER, "same series: the newest of it"
    assert choose(installs, "4.2.0") is OLD, "not offered: the default"
    assert choose(installs, None) is OLD and choose(installs, "") is OLD


def test_the_hello_lists_each_device_once_whichever_blenders_see_it():
    assert offered_devices([OLD, NEW, NEWER]) == [CPU, NEW.devices[1]]


def test_gpus_are_indices_or_none():
    assert gpu_indices("1,0,1") == [0, 1]
    assert gpu_indices("none") == []
    for bad in ("a", "-1", "0,x"):
        with pytest.raises(argparse.ArgumentTypeError):
            gpu_indices(bad)
