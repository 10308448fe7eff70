"""Frame workers: processes that write uploaded frames and thumbnail them."""
from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from coordinator.frame_workers import FrameWorkers


def png(width: int = 64, height: int = 36, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (10, 200, 30, 255)[:len(mode)]).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def workers():
    pool = FrameWorkers(2, 32)
    yield pool
    await pool.close()


async def test_frames_are_written_and_thumbnailed_in_worker_processes(workers, tmp_path):
    bodies = {tmp_path / f"frame-{i}": png(64 + i, 36) for i in range(20)}
    thumbs = await asyncio.gather(*(workers.store(dest, body) for dest, body in bodies.items()))
    for (dest, body), thumb in zip(bodies.items(), thumbs):
        assert dest.read_bytes() == body
        assert not dest.stat().st_mode & 0o222   # never rewritten: replaced by a rename
        assert thumb.thumbnail_ext == "jpg" and thumb.width == 64 + int(dest.name[6:])
        assert Image.open(io.BytesIO(thumb.thumbnail)).size[0] == 32
    assert len(workers._workers) == 2 and all(w.transport.get_pid() for w in workers._workers)


async def test_transparency_gives_a_png_thumbnail_and_non_images_go_to_the_pool(workers,
                                                                                tmp_path):
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    buf = io.BytesIO()
    clear.save(buf, "PNG")
    thumb = await workers.store(tmp_path / "alpha", buf.getvalue())
    assert thumb.thumbnail_ext == "png"
    # Not something Pillow reads here: written, and left to the process pool to judge.
    assert await workers.store(tmp_path / "exr", b"\x76\x2f\x31\x01" + b"\0" * 100) is None
    assert (tmp_path / "exr").stat().st_size == 104


async def test_a_frame_that_cannot_be_written_is_an_error_and_the_worker_goes_on(workers,
                                                                                 tmp_path):
    with pytest.raises(OSError, match="No such file"):
        await workers.store(tmp_path / "missing-dir" / "frame", png())
    assert (await workers.store(tmp_path / "frame", png())).width == 64


async def test_frames_still_land_when_a_worker_dies(workers, tmp_path):
    await workers.store(tmp_path / "first", png())
    for worker in workers._workers:
        worker.transport.kill()
        await worker.exited
    thumb = await workers.store(tmp_path / "after", png())
    assert thumb.width == 64 and (tmp_path / "after").read_bytes() == png()


async def test_without_worker_processes_frames_are_written_in_a_thread(tmp_path, monkeypatch):
    import coordinator.frame_workers as module
    monkeypatch.setattr(module.sys, "executable", str(tmp_path / "no-python-here"))
    pool = FrameWorkers(2, 32)
    try:
        thumb = await pool.store(tmp_path / "frame", png())
        assert thumb.width == 64 and (tmp_path / "frame").read_bytes() == png()
        assert not (tmp_path / "frame").stat().st_mode & 0o222
        assert pool._workers == []
    finally:
        await pool.close()
