"""`brender-submit`: send a .blend to the farm from a shell, optionally wait for it.

The file's own settings are the default: its active scene (or --scene), that
scene's frame range and step, camera, output format, resolution and samples.
Options override them for this shot only; the file is never changed. The Blender
version that saved the file (read from its header) is sent along: without
--blender the farm renders with that series if a node has it, else the newest.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import blend_info, preflight, shot_spec
from .client import BrenderError, Client, sha256_file
from .packing import MissingFiles, PackError
from .shot_spec import SpecError

# Exit codes: 2 the file or the options are wrong (nothing was sent), 1 the farm
# refused or failed the shot.
BAD_INPUT = 2
FARM_ERROR = 1
INTERRUPTED = 130


def chunk_arg(text: str) -> int | None:
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--chunk takes a number of frames or auto, not {text!r}") from None


def frames_arg(text: str) -> list[tuple[int, int]]:
    try:
        return shot_spec.parse_frames(text)
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-submit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("blend", type=Path)
    p.add_argument("--coordinator", default=os.environ.get("BRENDER_COORDINATOR",
                                                           "http://127.0.0.1:8080"),
                   help="the coordinator's URL (default $BRENDER_COORDINATOR, else %(default)s)")
    p.add_argument("--token", default=os.environ.get("BRENDER_TOKEN", ""),
                   help="your artist token (default $BRENDER_TOKEN)")
    p.add_argument("--ca-file", default=os.environ.get("BRENDER_CA_FILE", ""),
                   help="verify an https:// coordinator against this certificate (PEM) too")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain http:// to another machine (the token is sent in clear)")
    p.add_argument("--frames", type=frames_arg,
                   help="frames to render, e.g. 1-24 or 1-10,20,30-40 (default: the scene's range)")
    p.add_argument("--step", type=int, help="render every n-th frame (default: the scene's step)")
    p.add_argument("--chunk", type=chunk_arg, metavar="N|auto",
                   help="frames per job; auto (the default): the coordinator sizes jobs to the farm")
    low, high = shot_spec.shot.PRIORITY
    p.add_argument("--priority", type=int, default=shot_spec.shot.DEFAULT_PRIORITY,
                   help=f"{low}-{high}, higher renders first")
    p.add_argument("--name", help="the shot's name (default: the file's name)")
    p.add_argument("--fps", type=float, help="frame rate of the shot (default: the scene's)")
    g = p.add_argument_group("overrides (default: the file's own setting)")
    g.add_argument("--scene", help="the scene to render (default: the file's active scene)")
    g.add_argument("--camera", help="the camera object to render through")
    g.add_argument("--view-layer", dest="view_layers", action="append", metavar="NAME",
                   help="render only this view layer (repeatable)")
    g.add_argument("--format", dest="output_format", type=str.upper,
                   choices=shot_spec.OUTPUT_FORMATS, help="output file format")
    g.add_argument("--color-depth", choices=shot_spec.COLOR_DEPTHS)
    g.add_argument("--color-mode", type=str.upper, choices=shot_spec.COLOR_MODES)
    g.add_argument("--exr-codec", type=str.upper, choices=shot_spec.EXR_CODECS)
    g.add_argument("--view-transform", help="colour management view transform, e.g. Standard")
    g.add_argument("--look", help="colour management look")
    g.add_argument("--exposure", type=float, help="colour management exposure")
    g.add_argument("--transparent", dest="film_transparent", action=argparse.BooleanOptionalAction,
                   help="transparent film (--no-transparent: opaque)")
    g.add_argument("--resolution-x", type=int, metavar="PIXELS")
    g.add_argument("--resolution-y", type=int, metavar="PIXELS")
    g.add_argument("--resolution", dest="resolution_percentage", type=int, metavar="PERCENT",
                   help="resolution percentage")
    g.add_argument("--samples", type=int, metavar="N",
                   help="render samples (Cycles' samples or Eevee's render samples)")
    n = p.add_argument_group("which nodes render it (default: any node)")
    n.add_argument("--requires-tags", metavar="TAG,TAG",
                   help="only nodes with all of these tags render it")
    n.add_argument("--prefers-tags", metavar="TAG,TAG",
                   help="nodes with these tags take it before other shots of its priority")
    n.add_argument("--device", type=str.lower, choices=shot_spec.DEVICES,
                   help="render on the CPU, a GPU or either (default: the file's setting)")
    n.add_argument("--blender", metavar="RANGE",
                   help='Blender versions allowed, e.g. ">=4.2,<5", or 4.2 for any 4.2.x '
                        "(default: the file's series if a node has it, else the newest)")
    n.add_argument("--max-nodes", type=int, metavar="N",
                   help="at most N nodes render it at once")
    d = p.add_argument_group("delivery and checks (docs/api.md, Delivery)")
    d.add_argument("--output-template", metavar="TEMPLATE",
                   help="copy each frame as it lands to studio storage under this name, e.g. "
                        "'{project}/{shot}/{frame:04d}.{ext}' (the coordinator needs "
                        "--output-root)")
    d.add_argument("--output-root", metavar="NAME",
                   help="which of the coordinator's --output-root folders (default: its only one)")
    d.add_argument("--rerender-suspicious", action="store_true",
                   help="render once more, on another node, a frame that looks wrong (all one "
                        "colour, NaN pixels, far smaller than its neighbours)")
    p.add_argument("--allow-missing", action="store_true",
                   help="submit even when files the .blend uses are missing (they render missing)")
    p.add_argument("--allow-scripts", action="store_true",
                   help="let the .blend's own Python run (nodes must allow it too)")
    p.add_argument("--no-pack", action="store_true",
                   help="send the .blend alone, without tracing its external files")
    p.add_argument("--wait", action="store_true", help="show progress until the shot ends")
    p.add_argument("--json", action="store_true", help="print the shot and frames as JSON")
    p.add_argument("--download", type=Path, metavar="DIR",
                   help="once the shot completes (implies --wait), download its frames into "
                        "DIR, each checked against the farm's sha256")
    p.add_argument("--download-frames", metavar="LIST",
                   help="with --download: only these frames, e.g. 1-10,20")
    p.add_argument("--download-pass", metavar="NAME",
                   help="with --download: this pass of the extra outputs instead of the frames")
    return p.parse_args(argv)


# The options for what a shot asks of its nodes, by the field their errors name.
NODE_OPTIONS = {"requires_tags": "--requires-tags", "prefers_tags": "--prefers-tags",
                "device": "--device", "blender": "--blender", "max_nodes": "--max-nodes",
                "output_template": "--output-template", "output_root": "--output-root"}
RENDER_KEYS = ("scene", "camera", "view_layers", "output_format", "color_depth", "color_mode",
               "exr_codec", "view_transform", "look", "exposure", "film_transparent",
               "resolution_x", "resolution_y", "resolution_percentage", "samples")


def plan(args: argparse.Namespace, info: blend_info.BlendInfo) -> tuple[shot_spec.ShotSettings, str]:
    """The shot's settings from the file and the options, checked; and a summary line."""
    scene = info.scene(args.scene)
    render = {key: getattr(args, key) for key in RENDER_KEYS if getattr(args, key) is not None}
    step = args.step if args.step is not None else scene.frame_step
    if args.frames:
        ranges = args.frames
        source = "asked for"
    else:
        ranges = [(scene.frame_start, scene.frame_end)] if scene.frame_end >= scene.frame_start else []
        source = "the scene's"
    label = shot_spec.frames_text(ranges) or f"{scene.frame_start}-{scene.frame_end}"
    single = len(ranges) == 1
    settings = shot_spec.ShotSettings(
        name=args.name or args.blend.stem,
        frame_start=ranges[0][0] if single else None, frame_end=ranges[0][1] if single else None,
        frames=None if single else label, frame_step=step, chunk_size=args.chunk,
        priority=args.priority, render=render,
        fps=args.fps if args.fps is not None else scene.fps,
        submitted_by=os.environ.get("USER", ""), allow_scripts=args.allow_scripts,
        requires_tags=args.requires_tags, prefers_tags=args.prefers_tags, device=args.device,
        blender=args.blender, blender_saved_with=info.saved_with, max_nodes=args.max_nodes,
        output_template=args.output_template, output_root=args.output_root,
        rerender_suspicious=args.rerender_suspicious)
    try:
        settings = shot_spec.validate(settings)
    except SpecError as err:
        option = NODE_OPTIONS.get(err.field or "")
        if option:
            raise SpecError(f"{option}: {err}", err.field) from None
        raise
    total = len(shot_spec.frame_numbers(ranges, step))
    preflight.check(scene.facts(info.cameras), settings.render, total, label)
    fmt = render.get("output_format") or f"{scene.output_format} (the file's)"
    chunks = (f"jobs of {args.chunk} frame{'s' if args.chunk != 1 else ''}" if args.chunk
              else "jobs sized adaptively")
    width = render.get("resolution_x", scene.resolution_x)
    height = render.get("resolution_y", scene.resolution_y)
    percent = render.get("resolution_percentage", scene.resolution_percentage)
    summary = (f"scene '{scene.name}', frames {label} step {step} ({source}, {total} frames), "
               f"{fmt} {width}x{height} at {percent}%, {chunks}")
    if "samples" in render:
        summary += f", {render['samples']} samples"
    if info.saved_with:
        summary += f"; saved with Blender {info.saved_with}"
    needs = nodes_text(settings)
    return settings, summary + (f"; nodes: {needs}" if needs else "")


def nodes_text(s: shot_spec.ShotSettings) -> str:
    """What the shot asks of its nodes, for the summary line."""
    parts = []
    if s.requires_tags:
        parts.append("tags " + ", ".join(s.requires_tags))
    if s.prefers_tags:
        parts.append("preferring " + ", ".join(s.prefers_tags))
    if s.device:
        parts.append(f"device {s.device}")
    if s.blender:
        parts.append(f"Blender {s.blender}")
    if s.max_nodes:
        parts.append(f"at most {s.max_nodes} at once")
    return ", ".join(parts)


def build_manifest(blend: Path, pack: bool, workdir: Path,
                   allow_missing: bool) -> tuple[list[dict], str, Path, list[dict]]:
    """The files to upload, the .blend's path among them, the folder they sit
    in, and the missing files allowed."""
    if pack:
        from .packing import pack_blend

        result = pack_blend(blend, workdir, allow_missing=allow_missing)
        return result.files, result.blend_path, workdir, result.missing_report()
    size = blend.stat().st_size
    return [{"path": blend.name, "sha256": sha256_file(blend), "size": size}], blend.name, \
        blend.parent, []


def fail(message: str, code: int) -> int:
    print(f"brender-submit: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    # BAT logs its own warnings (truncated file, missing file): the errors below say it once.
    logging.getLogger("blender_asset_tracer").setLevel(logging.CRITICAL)
    args = parse_args(argv)
    if not args.blend.is_file():
        return fail(f"no such file: {args.blend}", BAD_INPUT)
    blend = args.blend.resolve()
    try:
        settings, summary = plan(args, blend_info.read(blend))
    except (SpecError, PackError) as exc:
        return fail(str(exc), BAD_INPUT)
    client = Client(args.coordinator, args.token, ca_file=args.ca_file, insecure=args.insecure)
    try:
        client.check_token()
        if not args.json:
            print(f"brender-submit: {summary}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="brender-pack-") as tmp:
            try:
                files, blend_path, root, missing = build_manifest(
                    blend, not args.no_pack, Path(tmp) / "pack", args.allow_missing)
                body = shot_spec.build(dataclasses.replace(settings, missing=missing),
                                       files, blend_path)
            except MissingFiles as exc:
                return fail(f"{exc}\nFix the paths, or submit anyway with --allow-missing.",
                            BAD_INPUT)
            except (SpecError, PackError) as exc:
                return fail(str(exc), BAD_INPUT)
            if missing and not args.json:
                print(f"brender-submit: submitting without {len(missing)} missing file(s)",
                      file=sys.stderr)
            client.upload_files(files, root)
        shot = client.create_shot(body)
        if not args.json:
            print(shot["id"], flush=True)
            for line in how_it_renders(shot):
                print(f"brender-submit: {line}", file=sys.stderr)
        if args.wait or args.download:
            shot = wait(client, shot["id"], quiet=args.json)
        if args.json:
            shot["frames"] = client.frames(shot["id"])
            print(json.dumps(shot, indent=2))
        if (args.wait or args.download) and shot["status"] != "completed":
            return fail(f"shot {shot['id']} {shot['status']}: {failure_text(client, shot)}",
                        FARM_ERROR)
        if args.download:
            from .downloads import download_frames
            got = download_frames(client, shot["id"], args.download, args.download_frames,
                                  args.download_pass)
            print(f"brender-submit: {got.verified} files ({got.bytes} bytes) verified in "
                  f"{got.folder}", file=sys.stderr)
    except BrenderError as exc:
        return fail(str(exc), FARM_ERROR)
    except KeyboardInterrupt:
        return fail("interrupted", INTERRUPTED)
    return 0


def how_it_renders(shot: dict[str, Any]) -> list[str]:
    """The farm's notices on the new shot (which Blender stands in for the file's)
    and why it waits, if it does ("no node has tag gpu")."""
    lines = [f"notice: {notice}" for notice in shot.get("notices") or []]
    if shot.get("waiting"):
        lines.append(f"waiting: {shot['waiting']}")
    return lines


def failure_text(client: Client, shot: dict[str, Any]) -> str:
    """Why the shot ended badly: its own reason, else its failed frames' reasons."""
    if shot.get("failure_reason"):
        return str(shot["failure_reason"])
    frames = shot.get("frames") or client.frames(shot["id"])
    reasons = list(dict.fromkeys(str(f["failure_reason"]) for f in frames
                                 if f.get("failure_reason")))
    return "; ".join(reasons[:3]) or "no reason given"


def wait(client: Client, shot_id: int, quiet: bool = False, interval: float = 0.5) -> dict:
    """Poll until the shot ends, drawing a progress bar on stderr when it changes."""
    shown = None
    while True:
        shot = client.shot(shot_id)
        done, total = shot["frames_done"], shot["frames_total"] or 1
        waiting = f" (waiting: {shot['waiting']})" if shot.get("waiting") else ""
        if not quiet and (done, shot["status"], waiting) != shown:
            shown = (done, shot["status"], waiting)
            bar = "#" * int(30 * done / total)
            end = "\r" if sys.stderr.isatty() else "\n"
            sys.stderr.write(f"[{bar:<30}] {done}/{total} frames  {shot['status']:<10}"
                             f"{waiting}{end}")
            sys.stderr.flush()
        if shot["status"] in ("completed", "failed", "cancelled"):
            if not quiet:
                sys.stderr.write("\n")
            return shot
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
