"""Shared fixtures: real farms (coordinator + nodes as processes) and test scenes."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

# Shared 2-core CI machines make wall-clock deadlines flaky; examples still run in full.
settings.register_profile("brender", deadline=None, max_examples=100)
settings.load_profile("brender")

from tests.farm import BLENDER, Farm, make_scene

IN_CI = bool(os.environ.get("CI"))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: a worker per core, at most 4 (the tests run Blender and farms of
    their own: more workers than that only wait for each other)."""
    return max(1, min(4, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    """Without Blender, skip its tests on a developer's machine; in CI, fail them."""
    if shutil.which(BLENDER) or os.path.exists(BLENDER) or IN_CI:
        return
    skip = pytest.mark.skip(reason="Debian's blender is not installed")
    for item in items:
        if "blender" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def farm_factory(tmp_path):
    """Start farms with custom coordinator flags; all are stopped after the test."""
    farms: list[Farm] = []

    def start(nodes: int = 0, node_args: tuple = (), **coordinator_args) -> Farm:
        farm = Farm(tmp_path / f"farm{len(farms)}", **coordinator_args)
        farms.append(farm)
        farm.start_coordinator()
        for i in range(nodes):
            farm.add_node(f"node{i + 1}", *node_args)
        if nodes:
            farm.wait_nodes_online(nodes)
        return farm

    yield start
    for farm in farms:
        farm.close()


@pytest.fixture
def farm(farm_factory) -> Farm:
    """A coordinator with two real nodes."""
    return farm_factory(nodes=2)


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scenes")


@pytest.fixture(scope="session")
def scene(scene_dir) -> Path:
    """A 64x36 Cycles scene, 10 frames, a cube moving left to right."""
    return make_scene(scene_dir / "scene.blend")


@pytest.fixture(scope="session")
def slow_scene(tmp_path_factory) -> Path:
    """About half a second per frame, so a test can act in the middle of a job."""
    return make_scene(tmp_path_factory.mktemp("slow") / "slow.blend", width=160, height=90,
                      samples=300, frame_end=40)


@pytest.fixture(scope="session")
def make_test_scene(scene_dir):
    def make(name: str, **opts) -> Path:
        return make_scene(scene_dir / name, **opts)
    return make


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MB filesystem, for data dirs that must fill up (mounting needs root)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True)
    if result.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs: {result.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster for the session (tests/pg/cluster.py)."""
    from tests.pg.cluster import Cluster, server_bin
    bin_dir = server_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's server is not installed (.ci/run installs it)")
        pytest.skip("PostgreSQL's server is not installed")
    cluster = Cluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """A fresh, empty PostgreSQL database of the session's cluster (dropped after)."""
    name = pg_cluster.new_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch) -> str:
    """Runs a test once per database: the coordinators it starts (in-process apps,
    and processes, which inherit the environment) use this one (`BRENDER_DATABASE`).
    Modules opt in with `pytestmark = pytest.mark.usefixtures("backend")`."""
    if request.param == "postgresql" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("a test of SQLite's own database files")
    if request.param == "sqlite":
        monkeypatch.delenv("BRENDER_DATABASE", raising=False)
        return ""
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("BRENDER_DATABASE", url)
    return url
