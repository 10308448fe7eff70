"""A delivery group is copied in a process of its own (coordinator/delivery_process.py):
each copy comes back with its own outcome, as in a thread; a process that dies costs
no frame (the group is copied in the thread, and a new process takes the next ones);
closing ends the process."""
from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from coordinator import delivery_process
from coordinator.delivered_files import Copy
from coordinator.delivery_process import CopierProcess


@pytest.fixture
def copier():
    copier = CopierProcess()
    yield copier
    copier.close()


def frames(tmp_path: Path, count: int) -> list[Path]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    paths = []
    for n in range(1, count + 1):
        path = data / f"frame_{n:06d}.png"
        path.write_bytes(f"frame {n}".encode())
        paths.append(path)
    return paths


def started(copier: CopierProcess, tmp_path: Path, count: int) -> tuple[Path, list[Path]]:
    """A studio root and `count` frames, the first delivered (the process started)."""
    root = tmp_path / "studio"
    root.mkdir()
    paths = frames(tmp_path, count)
    copier.copy([Copy((1, 1), paths[0], root, "0001.png")], links=False)
    assert copier.pid is not None
    return root, paths


def test_each_copy_of_a_group_comes_back_with_its_own_outcome(tmp_path, copier):
    root = tmp_path / "studio"
    root.mkdir()
    one, two = frames(tmp_path, 2)
    copies = [Copy((1, 1), one, root, "sh/0001.png"),
              Copy((1, 2), tmp_path / "data" / "gone.png", root, "sh/0002.png"),
              Copy((1, 3), two, root, "../outside/0003.png")]
    copier.copy(copies, links=False)
    assert copier.pid not in (None, os.getpid())   # a process of its own did it
    assert (root / "sh" / "0001.png").read_bytes() == b"frame 1"
    assert copies[0].error is None
    assert isinstance(copies[1].error, FileNotFoundError)
    assert copies[1].error.errno == errno.ENOENT
    assert isinstance(copies[2].error, ValueError)
    assert not (tmp_path / "outside").exists()
    assert sorted(p.name for p in (root / "sh").iterdir()) == ["0001.png"]  # no temp file


def test_hard_links_are_made_there_too(tmp_path, copier):
    root = tmp_path / "studio"
    root.mkdir()
    (frame,) = frames(tmp_path, 1)
    copy = Copy((1, 1), frame, root, "sh/0001.png")
    copier.copy([copy], links=True)
    assert copy.error is None
    assert os.path.samefile(root / "sh" / "0001.png", frame)
    assert not frame.stat().st_mode & 0o222    # the farm's file is read-only now


def test_a_process_that_died_costs_no_frame_and_is_replaced(tmp_path, copier):
    root, paths = started(copier, tmp_path, 2)
    first = copier.pid
    os.kill(first, signal.SIGKILL)
    copier._proc.wait()
    # The process is found dead before the group is sent: started again at once.
    copier.copy([Copy((1, 2), paths[1], root, "0002.png")], links=False)
    second = copier.pid
    assert second not in (None, first)
    assert (root / "0002.png").read_bytes() == b"frame 2"


def test_a_process_dying_mid_group_leaves_the_group_to_the_thread(tmp_path, copier,
                                                                   monkeypatch):
    monkeypatch.setattr(delivery_process, "RESTART_AFTER", 60)
    root, paths = started(copier, tmp_path, 2)
    proc = copier._proc
    real_read = delivery_process._read

    def dies_while_copying(stream):
        proc.kill()          # the process dies after the request was sent
        proc.wait()
        return real_read(stream)
    monkeypatch.setattr(delivery_process, "_read", dies_while_copying)
    copy = Copy((1, 2), paths[1], root, "0002.png")
    copier.copy([copy], links=False)
    assert copy.error is None
    assert (root / "0002.png").read_bytes() == b"frame 2"
    assert copier.pid is None       # no new process until RESTART_AFTER has passed
    monkeypatch.setattr(delivery_process, "_read", real_read)
    copy = Copy((1, 3), paths[0], root, "0003.png")
    copier.copy([copy], links=False)
    assert copy.error is None and copier.pid is None   # the thread still copies


def test_closing_ends_the_process(tmp_path):
    copier = CopierProcess()
    started(copier, tmp_path, 1)
    proc = copier._proc
    copier.close()
    assert proc.returncode == 0      # ended at the end of its input, not killed
    assert copier.pid is None
