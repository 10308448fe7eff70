"""The OpenAPI document and docs/api.md state the wire brender_protocol defines, and the
coordinator enforces exactly the limits the document states: a change to either side
that the other does not follow fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from brender_protocol import formats, messages, shot
from coordinator.app import create_app
from coordinator.config import Config
from coordinator.validation import ValidationError, shot_spec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SHA = "0" * 64


@pytest.fixture
async def document(aiohttp_client, tmp_path) -> dict:
    app = create_app(Config(data_dir=tmp_path / "data"), "t0ken")
    client = await aiohttp_client(app)
    return await (await client.get("/api/openapi.json")).json()


def body(**over: object) -> dict:
    spec = {"name": "s", "files": [{"path": "s.blend", "sha256": SHA, "size": 1}],
            "frame_start": 1, "frame_end": 4}
    spec.update(over)
    return spec


def accepted(**over: object) -> bool:
    try:
        shot_spec(body(**over))
    except ValidationError:
        return False
    return True


async def test_the_openapi_enums_are_the_protocols(document):
    schemas = document["components"]["schemas"]
    render = schemas["ShotSpec"]["properties"]["render"]["properties"]
    assert list(render) == list(shot.RENDER_KEYS)
    assert render["output_format"]["enum"] == list(formats.OUTPUT_FORMATS)
    assert render["color_depth"]["enum"] == list(formats.COLOR_DEPTHS)
    assert render["color_mode"]["enum"] == list(formats.COLOR_MODES)
    assert render["exr_codec"]["enum"] == list(formats.EXR_CODECS)
    spec = schemas["ShotSpec"]["properties"]
    assert spec["output_format"]["enum"] == list(formats.OUTPUT_FORMATS)
    body_ref = document["paths"]["/api/shots"]["post"]["requestBody"]
    assert body_ref["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/ShotSpec"


async def test_the_openapi_limits_are_what_the_coordinator_enforces(document):
    """Each limit the document states is accepted at the edge and refused one past it."""
    schemas = document["components"]["schemas"]
    spec = schemas["ShotSpec"]["properties"]
    priority = spec["priority"]
    assert (priority["minimum"], priority["maximum"]) == shot.PRIORITY
    patch = schemas["ShotChange"]["properties"]["priority"]
    assert (patch["minimum"], patch["maximum"]) == shot.PRIORITY
    for edge, ok in ((priority["minimum"], True), (priority["maximum"], True),
                     (priority["minimum"] - 1, False), (priority["maximum"] + 1, False)):
        assert accepted(priority=edge) is ok, edge

    low, high = spec["frame_start"]["minimum"], spec["frame_start"]["maximum"]
    assert (low, high) == (-shot.FRAME_LIMIT, shot.FRAME_LIMIT)
    assert accepted(frame_start=low, frame_end=low + 9)
    assert not accepted(frame_start=low - 1, frame_end=low)
    assert accepted(frame_start=high - 9, frame_end=high)
    assert not accepted(frame_start=high, frame_end=high + 1)

    most = schemas["ShotSpec"]["x-max-frames"]
    assert most == shot.MAX_FRAMES
    assert accepted(frame_start=1, frame_end=most)
    assert not accepted(frame_start=1, frame_end=most + 1)

    chunk = spec["chunk_size"]["oneOf"][0]
    assert (chunk["minimum"], chunk["maximum"]) == (1, shot.MAX_CHUNK)
    assert accepted(chunk_size=chunk["maximum"]) and accepted(chunk_size="auto")
    assert not accepted(chunk_size=chunk["maximum"] + 1)
    assert not accepted(chunk_size=chunk["minimum"] - 1)

    name = spec["name"]["maxLength"]
    assert name == shot.MAX_NAME
    assert accepted(name="n" * name) and not accepted(name="n" * (name + 1))

    frames = re.compile(spec["frames"]["pattern"])
    for text in ("1-10,20,30-40", " 1 - 3 , 2-5 ", "-5--2,0", "1,,2", "a", "1-"):
        assert bool(frames.match(text)) is accepted(frames=text), text


def docs_section(title: str) -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def listed_after(text: str, lead: str) -> list[str]:
    """The backticked words of the list that follows `lead` up to its ')'."""
    start = text.index(lead) + len(lead)
    return re.findall(r"`([^`]+)`", text[start:text.index(")", start)])


def test_docs_list_the_protocols_formats():
    shot_docs = docs_section("### Creating a shot")
    assert listed_after(shot_docs, "`output_format` (") == list(formats.OUTPUT_FORMATS)
    assert listed_after(shot_docs, "`color_mode`\n  (") == list(formats.COLOR_MODES)
    assert listed_after(shot_docs, "`exr_codec` (") == list(formats.EXR_CODECS)
    assert [d.strip('"') for d in listed_after(shot_docs, "`color_depth` (")] == \
        list(formats.COLOR_DEPTHS)
    node_docs = docs_section("## Node protocol")
    assert listed_after(node_docs, "The stored name's extension follows the format\n(") == \
        list(dict.fromkeys(formats.OUTPUT_FORMATS.values()))
    assert listed_after(node_docs, "(Blender's format name:\n") == list(formats.STILL_FORMATS)


def test_docs_state_the_protocols_limits():
    shot_docs = " ".join(docs_section("### Creating a shot").split())
    assert f"at most {shot.MAX_FRAMES:,} frames" in shot_docs
    assert f"`exposure` ({shot.EXPOSURE[0]}..{shot.EXPOSURE[1]})" in shot_docs
    assert "`resolution_y` ({}..{})".format(*shot.RESOLUTION) in shot_docs
    assert "`resolution_percentage` ({}..{})".format(*shot.RESOLUTION_PERCENTAGE) in shot_docs
    assert f"at most {shot.MAX_CHUNK:,} frames per job" in shot_docs
    assert f"at most {shot.MAX_MISSING:,}" in shot_docs
    assert "`priority` ({}..{}, default {})".format(*shot.PRIORITY,
                                                     shot.DEFAULT_PRIORITY) in shot_docs
    assert f"`frame_end`: {-shot.FRAME_LIMIT:,}..{shot.FRAME_LIMIT:,}" in shot_docs
    assert f"`frame_step` 1..{shot.FRAME_LIMIT:,}" in shot_docs
    assert f"at most {shot.MAX_FRAMES:,} frames in a shot" in shot_docs
    assert f"`name` (at most {shot.MAX_NAME} characters)" in shot_docs


def documented_messages() -> dict[str, tuple[str, set[str]]]:
    """type -> (direction, field names) from docs/api.md's node protocol listing."""
    listing = docs_section("## Node protocol").split("```")[1]
    found: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"\n(?=(?:node|coord) →)", listing.strip()):
        direction, _, message = block.partition(" → ")
        message = message.split("#")[0]
        kind = re.match(r'\{"type": "(\w+)"', message)
        assert kind, block
        names = set(re.findall(r'"(\w+)"', message[kind.end():])) - set(messages.FEATURES)
        found[kind[1]] = (direction, names)
    return found


def test_docs_list_every_message_with_its_fields():
    documented = documented_messages()
    wire = {kind: ("node", set(fields)) for kind, fields in messages.NODE_MESSAGES.items()}
    wire.update({kind: ("coord", set(fields))
                 for kind, fields in messages.COORDINATOR_MESSAGES.items()})
    wire["assign"] = ("coord", {"job", *messages.ASSIGN_JOB})
    assert documented == wire
    welcome = docs_section("## Node protocol").split("```")[1]
    assert re.findall(r'"features": \[([^\]]*)\]', welcome) == \
        [", ".join(f'"{f}"' for f in messages.FEATURES)]


def test_the_builders_write_the_fields_the_protocol_lists():
    built = {
        "hello": messages.hello(None, "n", "h", "p", "4.2", 1, [], False, None, "0.1.0"),
        "ready": messages.ready(), "heartbeat": messages.heartbeat(),
        "goodbye": messages.goodbye(), "progress": messages.progress("a", 1, 2, 3),
        "render_settings": messages.render_settings("a", {}),
        "job_done": {**messages.job_done("a", ""), "ready": True},
        "job_failed": messages.job_failed("a", "why", ""),
        "welcome": messages.welcome("n" * 32, "f" * 32, 5.0, False),
        "assign": messages.assign(1, "a", 2, [1], "s.blend", [], {}, False),
        "cancel": messages.cancel("a"), "error": messages.error("bad"),
    }
    fields = {**messages.NODE_MESSAGES, **messages.COORDINATOR_MESSAGES}
    assert set(built) == set(fields)
    for kind, message in built.items():
        assert message["type"] == kind
        assert tuple(k for k in message if k != "type") == fields[kind], kind
    assert tuple(built["assign"]["job"]) == messages.ASSIGN_JOB
