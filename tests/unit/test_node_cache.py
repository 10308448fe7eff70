"""The node's work dir: layouts keyed by (farm, shot), checked by sha256, cleaned by
age and size without touching what is in use."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from node.cache import BlobCache, CacheError
from node.cache_cleaning import clean, parse_size
from node.layouts import MANIFEST, Layouts, farm_key

FARM_A, FARM_B = "a" * 32, "b" * 32


class Work:
    def __init__(self, root: Path):
        self.cache = BlobCache(root / "cache")
        self.layouts = Layouts(root / "projects", self.cache)

    def blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        path = self.cache.path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return sha

    def files(self, **contents: bytes) -> list[dict]:
        return [{"path": name.replace("__", "/"), "sha256": self.blob(data),
                 "size": len(data)} for name, data in contents.items()]


@pytest.fixture
def work(tmp_path) -> Work:
    return Work(tmp_path / "node")


def test_the_farm_key_is_the_welcomes_farm_id_else_made_of_the_url():
    assert farm_key(FARM_A, "http://x:8080") == FARM_A
    assert farm_key(None, "http://x:8080") == farm_key("not-an-id", "http://x:8080/")
    assert farm_key(None, "http://x:8080") != farm_key(None, "http://x:8081")
    assert farm_key(None, "http://x:8080").startswith("url-")


def test_two_farms_shot_1_get_layouts_of_their_own(work):
    red = work.layouts.lay_out(FARM_A, 1, work.files(shot=b"red cube"))
    blue = work.layouts.lay_out(FARM_B, 1, work.files(shot=b"blue cube"))
    assert red != blue
    assert (red / "shot").read_bytes() == b"red cube"
    assert (blue / "shot").read_bytes() == b"blue cube"


def test_a_different_file_at_a_layouts_path_is_replaced(work):
    """Same farm key and shot id (a data dir started afresh at the same URL)."""
    project = work.layouts.lay_out(FARM_A, 1, work.files(shot=b"red cube", tex__wood=b"old"))
    work.layouts.lay_out(FARM_A, 1, work.files(shot=b"blue cube", tex__wood=b"new"))
    assert (project / "shot").read_bytes() == b"blue cube"
    assert (project / "tex" / "wood").read_bytes() == b"new"


def test_a_file_changed_in_place_is_replaced_and_one_not_listed_removed(work):
    files = work.files(shot=b"blue cube")
    project = work.layouts.lay_out(FARM_A, 2, files + work.files(old__tex=b"stale"))
    target = project / "shot"
    target.unlink()
    target.write_bytes(b"edited by someone")  # not the cache's blob any more
    work.layouts.lay_out(FARM_A, 2, files)
    assert target.read_bytes() == b"blue cube"
    assert not (project / "old").exists(), "a file the shot does not list is gone"
    assert sorted(p.name for p in project.iterdir()) == [MANIFEST, "shot"]


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", MANIFEST])
def test_paths_outside_the_layout_are_refused(work, path):
    sha = work.blob(b"x")
    with pytest.raises(CacheError):
        work.layouts.lay_out(FARM_A, 3, [{"path": path, "sha256": sha, "size": 1}])


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_layouts_unused_past_the_age_go_with_their_blobs_but_not_one_in_use(work):
    old = work.layouts.lay_out(FARM_A, 1, work.files(shot=b"one"))
    in_use = work.layouts.lay_out(FARM_A, 2, work.files(shot=b"two"))
    fresh = work.layouts.lay_out(FARM_B, 1, work.files(shot=b"three"))
    for layout in (old, in_use):
        age(layout / MANIFEST, 10 * 86400)
    for blob in work.cache.blobs.glob("??/*"):
        age(blob, 10 * 86400)
    clean(work.layouts.root, work.cache, 1 << 30, 7 * 86400, {in_use})
    assert not old.exists() and in_use.exists() and fresh.exists()
    assert not work.cache.path(hashlib.sha256(b"one").hexdigest()).exists()
    assert work.cache.path(hashlib.sha256(b"two").hexdigest()).exists()


def test_over_the_size_least_recently_used_layouts_go_first(work):
    megabyte = 1 << 20
    layouts = [work.layouts.lay_out(FARM_A, n, work.files(shot=bytes([n]) * megabyte))
               for n in (1, 2, 3, 4)]
    for n, layout in enumerate(layouts):  # shot 1 used longest ago
        age(layout / MANIFEST, 1000 - n)
    unused = work.blob(b"u" * megabyte)  # a blob no layout uses any more
    clean(work.layouts.root, work.cache, int(3.5 * megabyte), 86400, {layouts[0]})
    assert not work.cache.path(unused).exists()
    assert [p.exists() for p in layouts] == [True, False, True, True], \
        "in use stays; the least recently used other goes; hard links count once"


def test_what_is_not_a_complete_layout_is_removed(work):
    legacy = work.layouts.root / "7"  # an older node's projects/<shot id>
    legacy.mkdir(parents=True)
    (legacy / "shot.blend").write_bytes(b"red cube")
    half = work.layouts.root / FARM_A / "9"
    half.mkdir(parents=True)
    (half / "shot.blend").write_bytes(b"half")
    kept = work.layouts.lay_out(FARM_A, 1, work.files(shot=b"x"))
    clean(work.layouts.root, work.cache, 1 << 30, 86400, set())
    assert not legacy.exists() and not half.exists() and kept.exists()


@pytest.mark.parametrize("text, size", [("20G", 20 << 30), ("512M", 512 << 20),
                                        ("1.5t", int(1.5 * (1 << 40))), ("100", 100),
                                        ("2GiB", 2 << 30), ("10KB", 10 << 10)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "twenty", "-1G"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)
