"""A group of delivered copies is made durable with one syncfs of its file system, not
an fdatasync per frame; where syncfs is missing or fails, or the copies lie on the data
dir's own file system (where syncfs would write the coordinator's busy files too), each
copy is synced on its own, and a copy whose sync fails is the only one not delivered
(coordinator/file_sync.py, delivered_files.copy_batch). Where the root is on the data
dir's file system, a frame is a read-only hard link to the farm's file instead, and
where no link can be made, a copy."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from coordinator import delivered_files as delivery, file_sync
from coordinator.delivered_files import Copy, copy_batch


def frames_and_copies(data_dir: Path, root: Path) -> list[Copy]:
    root.mkdir()
    copies = []
    for n in range(1, 6):
        source = data_dir / f"{n}.png"
        source.write_bytes(f"frame {n}".encode())
        folder = "a" if n % 2 else "b"   # two folders, one file system
        copies.append(Copy((1, n), source, root, f"{folder}/{n:04d}.png"))
    return copies


@pytest.fixture
def group(tmp_path):
    """Frames in a data dir on another file system (a tmpfs) than the studio root."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system: /dev/shm")
    data_dir = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="brender-data-"))
    root = tmp_path / "studio"
    yield root, frames_and_copies(data_dir, root)
    shutil.rmtree(data_dir)


@pytest.fixture
def calls(monkeypatch):
    """Counts the real syncfs and fdatasync calls of a group."""
    seen = {"syncfs": 0, "fdatasync": 0}
    real_sync, real_fdatasync = file_sync.SYNCFS, os.fdatasync

    def syncfs(fd):
        seen["syncfs"] += 1
        return real_sync(fd)

    def fdatasync(fd):
        seen["fdatasync"] += 1
        real_fdatasync(fd)
    monkeypatch.setattr(file_sync, "SYNCFS", syncfs)
    monkeypatch.setattr(delivery.os, "fdatasync", fdatasync)
    return seen


def delivered(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


@pytest.mark.skipif(file_sync.SYNCFS is None, reason="needs Linux 5.8's syncfs")
def test_one_syncfs_for_the_whole_group_and_no_fdatasync(group, calls):
    root, copies = group
    copy_batch(copies)
    assert all(c.error is None for c in copies)
    assert calls == {"syncfs": 1, "fdatasync": 0}
    assert delivered(root) == {f"{'a' if n % 2 else 'b'}/{n:04d}.png": f"frame {n}".encode()
                               for n in range(1, 6)}


@pytest.mark.skipif(file_sync.SYNCFS is None, reason="needs Linux 5.8's syncfs")
def test_on_the_data_dirs_file_system_each_copy_is_synced_on_its_own(tmp_path, calls):
    root = tmp_path / "studio"
    copies = frames_and_copies(tmp_path, root)
    copy_batch(copies)
    assert all(c.error is None for c in copies)
    assert calls == {"syncfs": 0, "fdatasync": 5}
    assert len(delivered(root)) == 5


def test_without_syncfs_each_copy_is_synced_and_a_failing_one_fails_alone(
        group, calls, monkeypatch):
    root, copies = group
    monkeypatch.setattr(file_sync, "SYNCFS", None)
    copy_batch(copies[:2])
    assert calls == {"syncfs": 0, "fdatasync": 2}
    assert sorted(delivered(root)) == ["a/0001.png", "b/0002.png"]


def test_a_syncfs_that_fails_falls_back_to_each_copy_and_names_the_one_that_failed(
        group, calls, monkeypatch):
    root, copies = group
    monkeypatch.setattr(file_sync, "SYNCFS", lambda fd: -1)   # say the disk reported EIO
    real_fdatasync = os.fdatasync
    third = {"n": 0}

    def fdatasync(fd):
        third["n"] += 1
        if third["n"] == 3:
            raise OSError(errno.EIO, "Input/output error")
        real_fdatasync(fd)
    monkeypatch.setattr(delivery.os, "fdatasync", fdatasync)
    copy_batch(copies)
    assert [c.error is None for c in copies] == [True, True, False, True, True]
    assert copies[2].error.errno == errno.EIO
    assert sorted(delivered(root)) == ["a/0001.png", "a/0005.png", "b/0002.png",
                                       "b/0004.png"]   # and no temp file left behind


# -- delivered as a hard link (the default where the target is the data dir's FS) ------
def test_on_the_data_dirs_file_system_a_frame_is_linked_read_only_and_nothing_is_synced_but_its_folder(
        tmp_path, calls, monkeypatch):
    root = tmp_path / "studio"
    copies = frames_and_copies(tmp_path, root)
    folders_synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(delivery.os, "fsync", lambda fd: (folders_synced.append(fd),
                                                          real_fsync(fd)))
    copy_batch(copies, links=True)
    assert all(c.error is None for c in copies)
    assert calls == {"syncfs": 0, "fdatasync": 0} and len(folders_synced) == 2
    for copy in copies:
        target = root / copy.relative
        assert os.path.samefile(target, copy.source)       # one file, no bytes copied
        assert not target.stat().st_mode & 0o222      # no write bits left
    assert delivered(root) == {f"{'a' if n % 2 else 'b'}/{n:04d}.png": f"frame {n}".encode()
                               for n in range(1, 6)}
    assert not [p for p in root.rglob("*") if "brender-tmp" in p.name]


def test_a_frame_linked_again_replaces_the_earlier_link_and_the_farms_old_file_stays(
        tmp_path):
    root = tmp_path / "studio"
    first, second = tmp_path / "1.png", tmp_path / "2.png"
    first.write_bytes(b"first render")
    second.write_bytes(b"second render")
    delivery.copy_atomically(first, root, "s/0001.png", links=True)
    delivery.copy_atomically(second, root, "s/0001.png", links=True)
    assert os.path.samefile(root / "s" / "0001.png", second)
    assert first.read_bytes() == b"first render" and first.stat().st_nlink == 1
    assert sorted(p.name for p in (root / "s").iterdir()) == ["0001.png"]


def test_on_another_file_system_a_frame_is_copied_even_when_links_are_on(group, calls,
                                                                         monkeypatch):
    root, copies = group
    looked: list[Path] = []
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        looked.append(Path(path))
        return real_lstat(path, *args, **kwargs)
    monkeypatch.setattr(delivery.os, "lstat", lstat)
    copy_batch(copies, links=True)
    # The other file system is found out once (at most once a folder), not per frame.
    assert len([p for p in looked if p in {c.source for c in copies}]) <= 2
    assert all(c.error is None for c in copies)
    for copy in copies:
        assert not os.path.samefile(root / copy.relative, copy.source)
        assert copy.source.stat().st_mode & 0o200     # the farm's file left writable
    assert calls["fdatasync"] + calls["syncfs"] >= 1


def test_where_a_link_cannot_be_made_the_frame_is_copied(tmp_path, calls, monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(delivery.os, "link", refused)
    root = tmp_path / "studio"
    copies = frames_and_copies(tmp_path, root)
    copy_batch(copies, links=True)
    assert all(c.error is None for c in copies)
    assert calls == {"syncfs": 0, "fdatasync": 5}
    assert not any(os.path.samefile(root / c.relative, c.source) for c in copies)
    assert len(delivered(root)) == 5


def test_a_symlinked_frame_is_neither_linked_nor_copied(tmp_path):
    root, secret = tmp_path / "studio", tmp_path / "secret"
    secret.write_bytes(b"not a frame")
    (tmp_path / "frame.png").symlink_to(secret)
    copy = Copy((1, 1), tmp_path / "frame.png", root, "s/0001.png")
    root.mkdir()
    copy_batch([copy], links=True)
    assert isinstance(copy.error, OSError)
    assert not (root / "s" / "0001.png").exists() and secret.stat().st_mode & 0o200
