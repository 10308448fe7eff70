"""`brender-submit`: send a .blend to the farm from a shell, optionally wait for it."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .client import BrenderError, Client, sha256_file

FORMATS = ("PNG", "JPEG", "OPEN_EXR", "OPEN_EXR_MULTILAYER")


def parse_frames(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:-|\.\.)\s*(-?\d+)\s*|\s*(-?\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"frames must look like 1-24 or 7, not {text!r}")
    if match.group(3) is not None:
        n = int(match.group(3))
        return n, n
    return int(match.group(1)), int(match.group(2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-submit", description=__doc__)
    p.add_argument("blend", type=Path)
    p.add_argument("--coordinator", default=os.environ.get("BRENDER_COORDINATOR",
                                                           "http://127.0.0.1:8080"))
    p.add_argument("--token", default=os.environ.get("BRENDER_TOKEN", ""))
    p.add_argument("--frames", type=parse_frames, required=True, help="e.g. 1-24")
    p.add_argument("--step", type=int, default=1)
    p.add_argument("--chunk", type=int, default=5)
    p.add_argument("--priority", type=int, default=50)
    p.add_argument("--format", default="PNG", type=str.upper, choices=FORMATS)
    p.add_argument("--resolution", type=int, default=100, help="resolution percentage")
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--name")
    p.add_argument("--allow-scripts", action="store_true",
                   help="let the .blend's own Python run (nodes must allow it too)")
    p.add_argument("--no-pack", action="store_true",
                   help="send the .blend alone, without tracing its external files")
    p.add_argument("--wait", action="store_true", help="show progress until the shot ends")
    p.add_argument("--json", action="store_true", help="print the shot and frames as JSON")
    return p.parse_args(argv)


def build_manifest(blend: Path, pack: bool, workdir: Path) -> tuple[list[dict], str, Path]:
    """The files to upload, the .blend's path among them, and the folder they sit in."""
    if pack:
        from .packing import pack_blend

        result = pack_blend(blend, workdir)
        if result.missing:
            raise BrenderError("missing external files: " + ", ".join(map(str, result.missing)))
        return result.files, result.blend_path, workdir
    size = blend.stat().st_size
    return [{"path": blend.name, "sha256": sha256_file(blend), "size": size}], blend.name, \
        blend.parent


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.blend.is_file():
        print(f"brender-submit: no such file: {args.blend}", file=sys.stderr)
        return 2
    client = Client(args.coordinator, args.token)
    start, end = args.frames
    try:
        with tempfile.TemporaryDirectory(prefix="brender-pack-") as tmp:
            files, blend_path, root = build_manifest(args.blend.resolve(), not args.no_pack,
                                                     Path(tmp))
            client.upload_files(files, root)
        shot = client.create_shot({
            "name": args.name or args.blend.stem, "blend_path": blend_path, "files": files,
            "frame_start": start, "frame_end": end, "frame_step": args.step,
            "chunk_size": args.chunk, "priority": args.priority, "output_format": args.format,
            "resolution_percentage": args.resolution, "fps": args.fps,
            "submitted_by": os.environ.get("USER", ""), "allow_scripts": args.allow_scripts})
        if not args.json:
            print(shot["id"], flush=True)
        if args.wait:
            shot = wait(client, shot["id"], quiet=args.json)
        if args.json:
            shot["frames"] = client.frames(shot["id"])
            print(json.dumps(shot, indent=2))
    except BrenderError as exc:
        print(f"brender-submit: {exc}", file=sys.stderr)
        return 1
    if args.wait and shot["status"] != "completed":
        print(f"brender-submit: shot {shot['id']} {shot['status']}: "
              f"{shot.get('failure_reason') or ''}", file=sys.stderr)
        return 1
    return 0


def wait(client: Client, shot_id: int, quiet: bool = False, interval: float = 0.5) -> dict:
    """Poll until the shot ends, drawing a progress bar on stderr when it changes."""
    shown = None
    while True:
        shot = client.shot(shot_id)
        done, total = shot["frames_done"], shot["frames_total"] or 1
        if not quiet and (done, shot["status"]) != shown:
            shown = (done, shot["status"])
            bar = "#" * int(30 * done / total)
            end = "\r" if sys.stderr.isatty() else "\n"
            sys.stderr.write(f"[{bar:<30}] {done}/{total} frames  {shot['status']:<10}{end}")
            sys.stderr.flush()
        if shot["status"] in ("completed", "failed", "cancelled"):
            if not quiet:
                sys.stderr.write("\n")
            return shot
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
