"""Found by the corpus: a pack that fails while BAT copies files must end, not hang.

BAT starts its file-copying thread (not a daemon) in `execute()`; when something
fails after that (here a file BAT had just queued was already gone: BAT's own race,
bat_packer.py), nothing told the thread to stop, so `brender-submit` printed its error and then never exited.
"""
from __future__ import annotations

import threading

import pytest

from brender_addon import packing

pytestmark = pytest.mark.blender


def test_a_pack_failing_mid_copy_stops_bats_copy_thread(scene, tmp_path, monkeypatch):
    from blender_asset_tracer.pack import Packer

    def vanished(self):
        raise FileNotFoundError(2, "No such file or directory", str(self._rewrite_in))

    monkeypatch.setattr(Packer, "_write_info_file", vanished)
    before = set(threading.enumerate())
    with pytest.raises(packing.PackError, match="No such file"):
        packing.pack_blend(scene, tmp_path / "pack")
    left = [t for t in set(threading.enumerate()) - before if not t.daemon]
    for thread in left:
        thread.join(5)
    assert not [t for t in left if t.is_alive()], "BAT's copy thread outlived the failed pack"
