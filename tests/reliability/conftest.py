import pytest

from tests.farm import make_scene


@pytest.fixture(scope="session")
def slow_scene(tmp_path_factory):
    """About half a second per frame, so a test can act in the middle of a job."""
    return make_scene(tmp_path_factory.mktemp("slow") / "slow.blend", width=160, height=90,
                      samples=300, frame_end=40)
