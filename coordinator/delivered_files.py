"""The files of a delivery: each frame copied (or hard-linked) to its place under its
output root, atomically and durably, never outside the root (`copy_batch`). The queue,
retries and records are `delivery.py`'s."""
from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from stat import S_IMODE, S_ISREG

from . import delivery_paths, file_sync

Key = tuple[int, int]   # (shot id, frame number)


@dataclass
class Copy:
    """One frame to copy: its file, its root and its path there; `error` after a try."""
    key: Key
    source: Path
    root: Path
    relative: str
    error: Exception | None = None


def copy_batch(copies: list[Copy], links: bool = False) -> None:
    """Copy each frame to its place, atomically, as one group: every temp file written
    (a new name in the target folder, the bytes file to file in the kernel: sendfile),
    then synced, all with one syncfs of their file system (`file_sync.py`; where that
    cannot be done, each with its own fdatasync), then each renamed over its final
    name, then each folder synced once. A copy that fails keeps its error and leaves
    no temp file; the others go on.

    `links`: a frame whose target folder is on the frame's own file system is
    delivered as a hard link to the farm's file instead (`_link`): no bytes written,
    nothing to sync but the folder. Where that fails, it is copied.

    Each target folder is resolved, checked to lie inside its root and opened once per
    group (the frames of a shot share one); its files are then named relative to the
    open folder, so a symlink swapped into the path meanwhile cannot redirect them. The
    final name needs no check: the temp file is created anew (`O_EXCL`, which follows
    no symlink), a link is made at the final name only where no name is (a link never
    follows one), and a rename replaces a symlink at the final name, never its target.
    A source that is a symlink is not copied (`O_NOFOLLOW`): frames are plain files."""
    folders = _Folders()
    # copy, folder fd, temp, name, the temp's fd (-1: a link, its data synced already)
    written: list[tuple[Copy, int, str, str, int]] = []
    data_dirs: set[int] = set()   # the file systems the frames are read from
    synced: set[int] = set()      # the folders a name was made in
    for copy in copies:
        src = -1
        try:
            folder, name = folders.open(copy.root, copy.relative)
            # A folder on another file system than the frames copied so far cannot take
            # a link: no lstat a frame to find that out again (studio storage on a NAS).
            if links and (not data_dirs or folders.device(folder) in data_dirs):
                linked = _link(copy.source, folder, name, folders.device(folder))
                if linked == name:
                    synced.add(folder)
                    continue
                if linked is not None:
                    written.append((copy, folder, linked, name, -1))
                    continue
            src = os.open(copy.source, _SOURCE)
            stat = os.fstat(src)
            temp = _temp_name(name)
            out = os.open(temp, _CREATE, 0o666, dir_fd=folder)
        except (OSError, ValueError) as exc:
            copy.error = exc
            if src >= 0:
                os.close(src)
            continue
        written.append((copy, folder, temp, name, out))
        try:
            size, offset = stat.st_size, 0
            data_dirs.add(stat.st_dev)
            while offset < size:
                sent = os.sendfile(out, src, offset, size - offset)
                if not sent:
                    break   # the source shrank (replaced meanwhile): copied as it is
                offset += sent
        except OSError as exc:
            copy.error = exc
        finally:
            os.close(src)
    try:
        # One syncfs per file system for the group, else an fdatasync per file. Not on
        # the data dir's own file system: syncfs writes every dirty file there, the
        # database's WAL and the frames being stored too, at every group (in capacity
        # runs it was no cheaper than an fdatasync per copy; docs/performance.md).
        apart = {folder for copy, folder, _, _, out in written
                 if copy.error is None and out >= 0
                 and folders.device(folder) not in data_dirs}
        durable = bool(apart) and file_sync.sync_file_systems(apart)
        for copy, folder, temp, name, out in written:
            if out >= 0:
                try:
                    if copy.error is None and not (durable and folder in apart):
                        os.fdatasync(out)
                except OSError as exc:
                    copy.error = exc
                finally:
                    os.close(out)
            try:
                if copy.error is None:
                    os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                    synced.add(folder)
            except OSError as exc:
                copy.error = exc
            if copy.error is not None:
                try:
                    os.unlink(temp, dir_fd=folder)
                except FileNotFoundError:
                    pass
        for folder in synced:
            os.fsync(folder)
    finally:
        folders.close()


def _link(source: Path, folder: int, name: str, device: int) -> str | None:
    """Hard-link the frame `source` into `folder` (on `device`): at `name` when nothing
    is there yet, else at a temp name to rename over it. The name made, or None where
    it cannot be linked (another file system, no hard links there: it is copied).

    The farm's file and the delivered one are then one file, read-only (the farm's
    frames are stored so; an older one is made so here), so that a program editing
    the delivered frame in place is refused rather than changing the farm's copy; one
    that saves a new file and renames it over is not affected. Its data was synced
    when it was stored. Two system calls a frame, each a turn of the GIL given up
    beside a busy event loop: the file is not opened. A source that is not a regular
    file (a symlink) is not linked (its copy refuses it); the data dir is the farm's
    own, so its files are not swapped between the look and the link."""
    try:
        stat = os.lstat(source)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode) or stat.st_dev != device:
        return None
    try:
        if stat.st_mode & 0o222:
            os.chmod(source, S_IMODE(stat.st_mode) & ~0o222)
        try:
            os.link(source, name, dst_dir_fd=folder, follow_symlinks=False)
            return name
        except FileExistsError:   # delivered before: replaced atomically
            temp = _temp_name(name)
            os.link(source, temp, dst_dir_fd=folder, follow_symlinks=False)
            return temp
    except OSError:   # no hard links here (EPERM, EMLINK, ...): copy it
        return None


def _temp_name(name: str) -> str:
    return f".{name}.{_TEMP_TAG}-{next(_temp_numbers)}.brender-tmp"


# A temp file's name: unique to this process (and host: coordinators may share studio
# storage) without asking the system for randomness once per frame.
_TEMP_TAG = f"{os.getpid()}-{secrets.token_hex(4)}"
_temp_numbers = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SOURCE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Folders:
    """The target folders of one group, each resolved, checked and opened once."""

    def __init__(self) -> None:
        self.fds: dict[tuple[Path, str], int | Exception] = {}
        self.devices: dict[int, int] = {}

    def device(self, fd: int) -> int:
        """The file system of an open folder (read once)."""
        device = self.devices.get(fd)
        if device is None:
            device = self.devices[fd] = os.fstat(fd).st_dev
        return device

    def open(self, root: Path, relative: str) -> tuple[int, str]:
        """(an open fd of the folder of `relative` under `root`, the file's name)."""
        folder, _, name = relative.rpartition("/")
        if name in ("", ".", "..") or relative.startswith("/"):
            raise ValueError(f"{relative!r} names no file under the output root")
        key = (root, folder)
        fd = self.fds.get(key)
        if fd is None:
            try:
                fd = self.fds[key] = self._open(root, folder)
            except (OSError, ValueError) as exc:
                self.fds[key] = exc
                raise
        if isinstance(fd, Exception):
            raise fd
        return fd, name

    @staticmethod
    def _open(root: Path, folder: str) -> int:
        path = delivery_paths.inside_folder(root, folder)
        try:
            fd = os.open(path, _FOLDER)
        except (FileNotFoundError, NotADirectoryError):
            os.makedirs(path, exist_ok=True)
            # Resolved again: a symlink may have been made meanwhile.
            fd = os.open(delivery_paths.inside_folder(root, folder), _FOLDER)
        try:
            # The folder opened, whatever was swapped into the path since the check,
            # is the one written to: on Linux /proc names it.
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fd   # no /proc: the check before the open stands
        if not delivery_paths.within(os.path.realpath(root), opened):
            os.close(fd)
            raise ValueError(f"{folder!r} leads outside the output root")
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            if isinstance(fd, int):
                os.close(fd)


def copy_atomically(source: Path, root: Path, relative: str, links: bool = False) -> None:
    """One copy (`copy_batch` of one); raises its error."""
    copy = Copy((0, 0), source, root, relative)
    copy_batch([copy], links)
    if copy.error is not None:
        raise copy.error
