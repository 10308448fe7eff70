"""Pack a .blend and everything it needs into a directory tree the node can open.

bpy-free, built on Blender Asset Tracer (BAT, the packer Flamenco uses): it
follows every external file the .blend references (images and image sequences,
linked libraries and what *they* reference, sounds, fonts, caches...), copies
them into `out_dir` and rewrites the paths inside the copied .blend files so they
are relative. Files inside the project directory (by default the folder holding
the .blend) keep their place in the tree; files outside it go under
`_outside_project/<their absolute path>`.

Blender's own Python does not ship BAT, so the add-on zip carries a copy in
`vendor/`; it is used only when `blender_asset_tracer` is not importable already.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .bat_packer import packer_class

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
PACK_INFO = "pack-info.txt"

# progress(message, fraction): fraction in [0, 1], or None when unknown.
ProgressFn = Callable[[str, Optional[float]], None]


class PackError(Exception):
    """Packing failed (unreadable .blend, disk full...)."""


class PackCancelled(PackError):
    """`cancelled()` answered True while packing."""


class MissingFiles(PackError):
    """Files the .blend uses do not exist, and the caller did not allow that."""

    def __init__(self, missing: list[dict[str, str]]):
        self.missing = missing
        shown = "\n".join(f"  {m['path']}  (used by {m['used_by']})" for m in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        super().__init__(f"{len(missing)} external file(s) are missing; nothing was uploaded:"
                         f"\n{shown}{more}")


@dataclass
class PackResult:
    root: Path                      # the packed tree (out_dir)
    blend_path: str                 # the .blend to open, relative to root, '/'-separated
    files: list[dict] = field(default_factory=list)   # [{path, sha256, size}], sorted by path
    missing: list[str] = field(default_factory=list)  # absolute paths of referenced files that do not exist
    used_by: dict[str, str] = field(default_factory=dict)  # missing path -> the data-blocks using it

    @property
    def total_size(self) -> int:
        return sum(f["size"] for f in self.files)

    def missing_report(self) -> list[dict[str, str]]:
        """`[{"path", "used_by"}]`, as the shot's `missing` (CONTRACT.md)."""
        return _missing_report(self.missing, self.used_by)


def _missing_report(missing: list[str], used_by: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": p, "used_by": used_by.get(p, "?")} for p in missing]


ID_KINDS = {
    b"IM": "Image", b"LI": "Library", b"SO": "Sound", b"VF": "Font", b"MC": "Movie Clip",
    b"CF": "Cache File", b"OB": "Object", b"ME": "Mesh", b"SC": "Scene", b"VO": "Volume",
    b"NT": "Node Group", b"TE": "Texture", b"MA": "Material", b"WO": "World", b"TX": "Text",
}


def describe_usage(usage: Any, main_blend: Path) -> str:
    """The data-block of a BAT BlockUsage as an artist reads it: Image 'ghost',
    plus "in lib.blend" when it is inside a linked library."""
    raw = bytes(getattr(usage, "block_name", b"") or b"")
    kind = ID_KINDS.get(raw[:2], raw[:2].decode("ascii", "replace") or "data-block")
    text = f"{kind} '{raw[2:].decode('utf-8', 'replace')}'"
    blend = Path(usage.block.bfile.filepath).absolute()
    if blend != main_blend:
        text += f" in {blend.name}"
    return text


def zstd_unreadable(path: Path) -> str | None:
    """Why `path` cannot be read when it is Zstandard-compressed and there is no
    `zstandard` module; None when it can be read."""
    from blender_asset_tracer.blendfile import magic_compression
    if magic_compression.has_zstandard:
        return None
    try:
        with open(path, "rb") as f:
            kind = magic_compression.find_compression_type(f)
    except OSError:
        return None
    if kind != magic_compression.Compression.ZSTD:
        return None
    return (f"{Path(path).name} is compressed with Zstandard and this Python has no "
            "`zstandard` module to read it: `pip install zstandard` (Blender's official builds "
            "carry it; Debian's Blender needs `apt install python3-zstandard`), or save the "
            "file with Compress off.")


def import_bat() -> Any:
    """Import blender_asset_tracer, from the add-on's vendor/ copy if need be."""
    had_mp_main = "__mp_main__" in sys.modules
    try:
        return _import_bat()
    finally:
        # BAT imports multiprocessing, which aliases sys.modules["__mp_main__"] to
        # the current __main__. In Blender that can be a `--python` script's
        # temporary module, freed when the script ends: Blender then crashes on
        # exit while scanning sys.modules (seen with Blender 3.4). Nothing here
        # spawns processes, so drop the alias.
        if not had_mp_main and "bpy" in sys.modules:
            sys.modules.pop("__mp_main__", None)


def _import_bat() -> Any:
    try:
        import blender_asset_tracer  # noqa: F401
    except ImportError:
        if not (VENDOR_DIR / "blender_asset_tracer").is_dir():
            raise PackError(
                "Blender Asset Tracer is missing: install the add-on from the zip that "
                "build_addon.py makes (it carries BAT), or `pip install blender-asset-tracer`."
            ) from None
        if str(VENDOR_DIR) not in sys.path:
            sys.path.append(str(VENDOR_DIR))
        import blender_asset_tracer  # noqa: F401
    import blender_asset_tracer.pack
    import blender_asset_tracer.pack.progress
    _fix_material_node_trees()
    return blender_asset_tracer


def _fix_material_node_trees() -> None:
    """Work around BAT 1.23 missing the images of materials in *linked* Blender
    5.0 libraries: its shared node-tree expander looks for the Scene's new
    `compositing_node_group` field on every ID in 5.0 files, finds none on a
    Material or World, and so never follows their node trees. Use that field
    only where the DNA has it, `nodetree` elsewhere."""
    from blender_asset_tracer.trace import expanders
    original = getattr(expanders, "_expand_generic_nodetree_id", None)
    expand_tree = getattr(expanders, "_expand_generic_nodetree", None)
    if original is None or expand_tree is None or getattr(original, "brender_fixed", False):
        return

    def expand_nodetree_id(block: Any) -> Any:
        field = b"compositing_node_group" if block.dna_type.has_field(b"compositing_node_group") \
            else b"nodetree"
        if not block.dna_type.has_field(field):
            return
        tree = block.get_pointer(field, None)
        if tree is not None:
            yield from expand_tree(tree)

    setattr(expand_nodetree_id, "brender_fixed", True)
    setattr(expanders, "_expand_generic_nodetree_id", expand_nodetree_id)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _make_callback(bat: Any, progress: ProgressFn | None) -> Any:
    base = bat.pack.progress.Callback

    class Callback(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.traced = 0

        def _say(self, message: str, fraction: float | None = None) -> None:
            if progress is not None:
                progress(message, fraction)

        def trace_blendfile(self, filename: Path) -> None:
            self._say(f"Reading {Path(filename).name}")

        def trace_asset(self, filename: Path) -> None:
            self.traced += 1
            self._say(f"Found {self.traced} files ({Path(filename).name})")

        def rewrite_blendfile(self, orig_filename: Path) -> None:
            self._say(f"Making paths relative in {Path(orig_filename).name}")

        def transfer_file(self, src: Path, dst: Any) -> None:
            self._say(f"Copying {Path(str(dst)).name}")

        def transfer_progress(self, total_bytes: int, transferred_bytes: int) -> None:
            if total_bytes:
                self._say("Copying files", min(1.0, transferred_bytes / total_bytes))

    return Callback()


def _rewrite_inside(packer: Any, out_dir: Path) -> None:
    """BAT writes the .blend files it rewrites, and its pack-info.txt, to a folder of
    its own in the system's temp dir, then moves them into the pack. Here that folder
    is a hidden one in the pack's own folder: nothing outside the pack has to stay put
    while packing, and the moves are renames on one file system. BAT removes it as it
    closes. A BAT without these attributes keeps its own."""
    if not (hasattr(packer, "_tmpdir") and hasattr(packer, "_rewrite_in")):
        return
    packer._tmpdir.cleanup()
    packer._tmpdir = tempfile.TemporaryDirectory(prefix=".bat-rewrite-", dir=out_dir)
    packer._rewrite_in = Path(packer._tmpdir.name)


def pack_blend(blend_path: Path, out_dir: Path,
               progress: ProgressFn | None = None,
               cancelled: Callable[[], bool] | None = None,
               *, project: Path | None = None, allow_missing: bool = True) -> PackResult:
    """Pack `blend_path` and its dependencies into `out_dir` (empty or new).

    `progress(message, fraction)` is called from this thread as packing goes;
    `cancelled()` is polled and, once it answers True, packing stops with
    `PackCancelled`. `project` is the folder whose layout is kept (default: the
    .blend's folder). Missing files are listed in `PackResult.missing` (and
    `used_by`); with `allow_missing=False` they raise `MissingFiles` instead,
    before anything is copied.
    """
    bat = import_bat()
    from blender_asset_tracer import blendfile
    from blender_asset_tracer.pack import Aborted
    Packer = packer_class()

    blend_path = Path(blend_path).absolute()
    out_dir = Path(out_dir).absolute()
    project = Path(project).absolute() if project else blend_path.parent
    if not blend_path.is_file():
        raise PackError(f"{blend_path} does not exist")
    unreadable = zstd_unreadable(blend_path)
    if unreadable:
        raise PackError(unreadable)
    try:
        blend_path.relative_to(project)
    except ValueError:
        raise PackError(f"{blend_path} is not inside the project folder {project}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise PackError(f"{out_dir} is not empty")

    stop = threading.Event()
    try:
        with Packer(blend_path, project, str(out_dir)) as packer:
            _rewrite_inside(packer, out_dir)
            packer.progress_cb = _make_callback(bat, progress)
            watcher = None
            if cancelled is not None:
                def watch() -> None:
                    while not stop.wait(0.1):
                        if cancelled():
                            packer.abort("cancelled")
                            return
                watcher = threading.Thread(target=watch, name="brender-pack-cancel", daemon=True)
                watcher.start()
            try:
                packer.strategise()
                missing = sorted(str(p) for p in packer.missing_files)
                used_by = {str(path): ", ".join(dict.fromkeys(describe_usage(u, blend_path)
                                                               for u in usages))
                           for path, usages in getattr(packer, "missing_usages", {}).items()}
                if missing and not allow_missing:
                    raise MissingFiles(_missing_report(missing, used_by))
                packer.execute()
            except Aborted as err:
                if cancelled is not None and cancelled():
                    raise PackCancelled("Packing cancelled") from None
                raise PackError(f"Packing failed: {err}") from None
            except BaseException:
                # BAT's copy thread (not a daemon) runs until told to stop: without
                # this, a pack that fails mid-copy leaves the process unable to exit.
                packer.abort("failed")
                raise
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join()
            packed_blend = Path(packer.output_path)
    except (PackError, OSError) as err:
        if isinstance(err, PackError):
            raise
        raise PackError(f"Packing failed: {err}") from err
    except Exception as err:  # BAT raises its own errors for unreadable .blend files
        raise PackError(f"Packing failed: {type(err).__name__}: {err}") from err
    finally:
        # BAT keeps the .blend files it read open in a cache; close them so the
        # next pack sees fresh files (and Windows can delete them).
        blendfile.close_all_cached()

    (out_dir / PACK_INFO).unlink(missing_ok=True)
    if progress:
        progress("Hashing files", None)
    files: list[dict[str, Any]] = []
    for dirpath, _dirs, names in os.walk(out_dir):
        for name in names:
            path = Path(dirpath) / name
            rel = path.relative_to(out_dir).as_posix()
            files.append({"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size})
            if cancelled is not None and cancelled():
                raise PackCancelled("Packing cancelled")
    files.sort(key=lambda f: f["path"])
    return PackResult(root=out_dir, blend_path=packed_blend.relative_to(out_dir).as_posix(),
                      files=files, missing=missing, used_by=used_by)
