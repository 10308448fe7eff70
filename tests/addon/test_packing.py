"""packing.pack_blend: everything the scene needs, in a tree the node can open.

The scenes come from real Blender (conftest.make_project): an external texture
inside the project, a library .blend linked by absolute path from outside the
project, and that library's own relative texture.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from brender_addon import packing

pytestmark = pytest.mark.blender


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def deps_of(blend: Path) -> list[Path]:
    """Every file `blend` (and the libraries it links) needs, as BAT resolves it."""
    from blender_asset_tracer import blendfile, trace
    try:
        return sorted({usage.abspath for usage in trace.deps(blend)})
    finally:
        blendfile.close_all_cached()


def test_manifest_lists_every_file_with_its_hash(project, tmp_path):
    before = {k: sha(v) for k, v in project.items() if v.is_file()}
    messages = []
    result = packing.pack_blend(project["blend"], tmp_path / "pack",
                                progress=lambda m, f: messages.append((m, f)))
    assert result.blend_path == "shot.blend"
    assert result.missing == []
    paths = [f["path"] for f in result.files]
    assert paths == sorted(paths)
    assert "shot.blend" in paths and "textures/checker.png" in paths
    outside = [p for p in paths if p.startswith("_outside_project/")]
    assert sorted(Path(p).name for p in outside) == ["library.blend", "red.png"]
    assert "pack-info.txt" not in paths
    on_disk = sorted(p.relative_to(result.root).as_posix() for p in result.root.rglob("*") if p.is_file())
    assert on_disk == paths
    for f in result.files:
        file = result.root / f["path"]
        assert f["size"] == file.stat().st_size and f["sha256"] == sha(file)
    assert result.total_size == sum(f["size"] for f in result.files)
    # The textures are byte-identical; the artist's own files are left untouched.
    by_name = {Path(f["path"]).name: f for f in result.files}
    assert by_name["checker.png"]["sha256"] == before["texture"]
    assert by_name["red.png"]["sha256"] == before["library_texture"]
    assert {k: sha(v) for k, v in project.items() if v.is_file()} == before
    assert messages and all(f is None or 0.0 <= f <= 1.0 for _, f in messages)


def rebuild_tree(result: packing.PackResult, node: Path) -> Path:
    """Lay the manifest's files out elsewhere, as the node does; return the .blend."""
    for f in result.files:
        dest = node / f["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.root / f["path"], dest)
    return node / result.blend_path


def assert_stands_alone(blend: Path, node: Path) -> list[Path]:
    """Every path in every .blend resolves inside `node` (sequences and caches,
    given as globs, match at least one file there)."""
    deps = deps_of(blend)
    for dep in deps:
        assert dep.resolve().parent.is_relative_to(node.resolve()), f"{dep} escapes the packed tree"
        if "*" in dep.name:
            assert list(dep.parent.glob(dep.name)), f"nothing matches {dep}"
        else:
            assert dep.is_file(), dep
    return deps


def test_the_packed_tree_stands_alone(project, tmp_path):
    """Rebuild the tree from the manifest elsewhere, as the node does: every path
    in every .blend resolves inside it (relative), nothing points back home."""
    result = packing.pack_blend(project["blend"], tmp_path / "pack")
    node = tmp_path / "node-tree"
    deps = assert_stands_alone(rebuild_tree(result, node), node)
    assert len(deps) == 3          # checker.png, library.blend, red.png (through the library)
    # And the original, for contrast, depends on files outside its folder.
    assert any(not d.resolve().is_relative_to(project["blend"].parent.resolve())
               for d in deps_of(project["blend"]))


def test_sequences_sounds_fonts_and_caches_are_packed(project_extras, tmp_path):
    result = packing.pack_blend(project_extras["blend"], tmp_path / "pack")
    paths = [f["path"] for f in result.files]
    assert result.missing == []
    assert [p for p in paths if p.startswith("seq/")] == [f"seq/frame_{n:04d}.png" for n in (1, 2, 3)]
    assert "audio/beep.wav" in paths
    assert "_outside_project/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" in paths
    caches = [p for p in paths if p.startswith("blendcache_shot/")]
    assert len(caches) == 3 and all(p.endswith(".bphys") for p in caches)
    node = tmp_path / "node-tree"
    assert_stands_alone(rebuild_tree(result, node), node)


def test_missing_files_are_reported(project_missing, tmp_path):
    result = packing.pack_blend(project_missing["blend"], tmp_path / "pack")
    assert len(result.missing) == 1
    assert result.missing[0].endswith("textures/does_not_exist.png")
    assert "textures/checker.png" in [f["path"] for f in result.files]
    assert result.missing_report() == [{"path": result.missing[0], "used_by": "Image 'ghost'"}]


def test_missing_files_name_their_data_block_and_stop_before_copying(tmp_path):
    """A texture missing inside a linked library, then the library itself."""
    from .conftest import make_project
    project = make_project(tmp_path / "p", tmp_path / "home")
    project["library_texture"].unlink()
    with pytest.raises(packing.MissingFiles) as err:
        packing.pack_blend(project["blend"], tmp_path / "pack1", allow_missing=False)
    assert err.value.missing == [{"path": str(project["library_texture"]),
                                  "used_by": "Image 'red.png' in library.blend"}]
    assert "(used by Image 'red.png' in library.blend)" in str(err.value)
    assert list((tmp_path / "pack1").iterdir()) == [], "nothing is copied when refused"

    project["library"].unlink()
    with pytest.raises(packing.MissingFiles) as err:
        packing.pack_blend(project["blend"], tmp_path / "pack2", allow_missing=False)
    assert err.value.missing == [{"path": str(project["library"]),
                                  "used_by": "Library 'library.blend'"}]


def test_refuses_a_non_empty_target_or_no_blend(project, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "old.txt").write_text("x")
    with pytest.raises(packing.PackError, match="not empty"):
        packing.pack_blend(project["blend"], tmp_path / "busy")
    with pytest.raises(packing.PackError, match="does not exist"):
        packing.pack_blend(tmp_path / "nope.blend", tmp_path / "out")
    with pytest.raises(packing.PackError, match="project"):
        packing.pack_blend(project["blend"], tmp_path / "out2", project=tmp_path / "elsewhere")


def test_not_a_blend_file_is_a_pack_error(tmp_path):
    fake = tmp_path / "fake.blend"
    fake.write_bytes(b"this is not a blend file")
    with pytest.raises(packing.PackError, match="Packing failed"):
        packing.pack_blend(fake, tmp_path / "out")


def test_cancel_stops_packing(project, tmp_path):
    with pytest.raises(packing.PackCancelled):
        packing.pack_blend(project["blend"], tmp_path / "pack", cancelled=lambda: True)


def test_project_folder_keeps_its_layout(project, tmp_path):
    """With the project set to the scene's root, the library is inside it: no
    _outside_project, the tree mirrors the artist's folders."""
    result = packing.pack_blend(project["blend"], tmp_path / "pack", project=project["root"])
    paths = [f["path"] for f in result.files]
    assert result.blend_path == "project/shot.blend"
    assert sorted(paths) == ["assets/library.blend", "assets/tex/red.png",
                             "project/shot.blend", "project/textures/checker.png"]
    node = tmp_path / "node-tree"
    assert_stands_alone(rebuild_tree(result, node), node)


def test_vendored_bat_is_used_without_an_installed_one(addon_zip, project, tmp_path):
    """Blender's Python has no BAT: the zip's vendor/ copy must be enough."""
    with zipfile.ZipFile(addon_zip) as zf:
        zf.extractall(tmp_path / "unzipped")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "try:\n"
        "    import blender_asset_tracer\n"
        "    raise SystemExit('BAT importable without the vendor copy')\n"
        "except ImportError:\n"
        "    pass\n"
        f"sys.path.insert(0, {str(tmp_path / 'unzipped')!r})\n"
        "from brender_addon import packing\n"
        f"r = packing.pack_blend(Path({str(project['blend'])!r}), Path({str(tmp_path / 'out')!r}))\n"
        "import blender_asset_tracer\n"
        "print(json.dumps({'bat': blender_asset_tracer.__file__, 'files': len(r.files)}))\n")
    # -I -S: no site-packages, so the installed BAT is out of reach.
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "/brender_addon/vendor/blender_asset_tracer/" in out["bat"]
    assert out["files"] == 4


def test_a_pack_needs_nothing_in_the_system_temp_dir_to_stay_put(project, tmp_path,
                                                                 monkeypatch):
    """BAT's rewritten .blend files and pack-info.txt are made inside the pack's own
    folder: a pack goes through even when the system's temp dir is emptied meanwhile,
    and leaves no folder of its own."""
    import tempfile

    from blender_asset_tracer.pack import Packer
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    real = Packer._write_info_file

    def emptied_first(self):
        for entry in system_tmp.iterdir():
            shutil.rmtree(entry)
        real(self)
    monkeypatch.setattr(Packer, "_write_info_file", emptied_first)
    result = packing.pack_blend(project["blend"], tmp_path / "pack")
    assert "shot.blend" in [f["path"] for f in result.files]
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == \
        ["_outside_project", "shot.blend", "textures"]
    assert list(system_tmp.iterdir()) == []


def test_a_file_bat_moves_before_it_has_read_its_size_still_packs(project, tmp_path,
                                                                   monkeypatch):
    """BAT queues a file to be moved into the pack, then reads its size; its transfer
    thread may move the file first. Here it always does: each queued move waits until
    the file has gone (pack-info.txt, the rewritten .blend). The pack still goes
    through, with every file (CI failed with "No such file or directory" now and then)."""
    import time

    from blender_asset_tracer.pack import transfer
    real_init = transfer.FileTransferer.__init__
    moved: list[str] = []

    def with_waiting_queue(self) -> None:
        real_init(self)
        real_put = self.queue.put

        def put_then_wait_for_the_move(item, *args, **kwargs):
            real_put(item, *args, **kwargs)
            src, _dst, action = item
            if action is transfer.Action.MOVE:
                deadline = time.monotonic() + 10
                while src.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
                moved.append(src.name)
        self.queue.put = put_then_wait_for_the_move

    monkeypatch.setattr(transfer.FileTransferer, "__init__", with_waiting_queue)
    result = packing.pack_blend(project["blend"], tmp_path / "pack")
    assert "pack-info.txt" in moved and any(name.endswith(".blend") for name in moved)
    assert sorted(f["path"] for f in result.files) == sorted(
        p.relative_to(tmp_path / "pack").as_posix()
        for p in (tmp_path / "pack").rglob("*") if p.is_file())
    assert "shot.blend" in [f["path"] for f in result.files]
