"""`brender-submit` asks for delivery to studio storage and frame re-renders, against a
real coordinator started with an output root: the shot records the template, the root
and the re-render wish; a template the farm refuses is one message and exit 1, and no
shot is made."""
from __future__ import annotations

import pytest

from .test_submit_cli import made, submit  # noqa: F401  (made: a fixture)

pytestmark = pytest.mark.blender


def test_the_shot_records_its_delivery_and_the_farm_judges_the_template(
        farm_factory, made, tmp_path):  # noqa: F811
    studio = tmp_path / "studio"
    studio.mkdir()
    farm = farm_factory(nodes=0, output_root=f"renders={studio}")
    project = made("plain")
    proc = submit(farm, project["blend"], "--frames", "1-2", "--output-template",
                  "{project}/{shot}/{frame:04d}.{ext}", "--rerender-suspicious")
    assert proc.returncode == 0, proc.stderr
    shot = farm.client().shot(int(proc.stdout.split()[0]))
    assert (shot["output_template"], shot["output_root"], shot["rerender_suspicious"]) == (
        "{project}/{shot}/{frame:04d}.{ext}", "renders", True)

    before = len(farm.client()._request("GET", "/api/shots")["shots"])
    for args, words in ((["--output-template", "../{frame:04d}.{ext}"], "output_template"),
                        (["--output-template", "{frame}.{ext}", "--output-root", "nas"],
                         "output_root")):
        proc = submit(farm, project["blend"], "--frames", "1", *args)
        assert proc.returncode == 1, proc.stderr
        assert words in proc.stderr
    assert len(farm.client()._request("GET", "/api/shots")["shots"]) == before
