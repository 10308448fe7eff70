"""BAT's Packer as Brender packs with it (packing.py imports BAT first: `import_bat`).

Two changes to BAT 1.x's behaviour, each kept only while BAT's internals it relies on
are there (else BAT's own class is used, whose result is still correct):
- files referenced by an absolute path inside the project keep their place in the
  project tree;
- a file queued to be moved into the pack has its size read before it is queued.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _queue_move_sized_first(self: Any, src: Path, dst: Any) -> None:
    """BAT's `queue_move`, except that the file's size is read *before* it is queued.
    BAT queues the move, then reads the size: its transfer thread may have moved the
    file already, and the pack failed with "No such file or directory" now and then
    under load (CI: pack-info.txt, renamed into the pack a few ms before)."""
    from blender_asset_tracer.pack.transfer import Action
    if src.is_dir():
        raise TypeError(f"only files can be moved, not directories: {src}")
    assert not self.done.is_set(), "Queueing not allowed after done_and_join() was called"
    assert not self._abort.is_set(), "Queueing not allowed after abort_and_join() was called"
    if self.has_error:
        return
    size = src.stat().st_size
    self.queue.put((src, dst, Action.MOVE))
    self.total_queued_bytes += size


def _transferer_classes() -> dict[bool, Any] | None:
    """BAT's file copiers (by `compress`) with `_queue_move_sized_first`; None for a
    BAT whose copiers lack what it relies on."""
    from blender_asset_tracer.pack import filesystem, transfer
    base = transfer.FileTransferer
    if not all(hasattr(base, name) for name in ("queue_move", "has_error", "done_and_join")):
        return None
    return {compress: type(f"SizedFirst{cls.__name__}", (cls,),
                           {"queue_move": _queue_move_sized_first})
            for compress, cls in ((False, filesystem.FileCopier),
                                  (True, filesystem.CompressedFileCopier))}


def packer_class() -> Any:
    """BAT's Packer, except that files referenced by an *absolute* path inside
    the project keep their place in the project tree (BAT sends every rewritten
    path to `_outside_project/`, even those inside the project), and that a file
    queued to be moved has its size read first (`_queue_move_sized_first`)."""
    from blender_asset_tracer import bpathlib
    from blender_asset_tracer.pack import Packer
    copiers = _transferer_classes()

    class ProjectPacker(Packer):
        """Also records which data-blocks use each missing file."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.missing_usages: dict[Path, list[Any]] = {}

        def _record_missing(self, asset_path: Path, usage: Any) -> None:
            if asset_path in self.missing_files:
                self.missing_usages.setdefault(asset_path, []).append(usage)

        def _visit_asset(self, asset_path: Path, usage: Any) -> None:
            super()._visit_asset(asset_path, usage)
            self._record_missing(asset_path, usage)

        def _visit_sequence(self, asset_path: Path, usage: Any) -> None:
            super()._visit_sequence(asset_path, usage)
            self._record_missing(asset_path, usage)

        def _find_new_paths(self) -> None:
            project = bpathlib.make_absolute(self.project)
            for path in self._new_location_paths:
                action = self._actions[path]
                try:
                    relpath = bpathlib.make_absolute(path).relative_to(project)
                except ValueError:
                    action.new_path = Path(self._target_path, "_outside_project",
                                           bpathlib.strip_root(path))
                else:
                    action.new_path = Path(self._target_path, relpath)

        def _create_file_transferer(self) -> Any:
            if copiers is None:
                return super()._create_file_transferer()
            return copiers[bool(self.compress)]()

    if not all(hasattr(Packer, name) for name in ("_find_new_paths", "_path_in_project",
                                                  "_visit_asset", "_visit_sequence",
                                                  "_create_file_transferer")):
        return Packer   # a BAT whose internals changed: its own layout is still correct
    return ProjectPacker
