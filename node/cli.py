"""`brender-node`: a render node that dials the coordinator and renders with Blender."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from . import __version__
from .agent import Agent, AgentConfig
from .cache_cleaning import parse_size
from .runner import DEFAULT_CACHE_AGE, NodeOptions


def size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 20G, 500M)") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-node", description=__doc__)
    p.add_argument("--coordinator", default=os.environ.get("BRENDER_COORDINATOR",
                                                           "http://127.0.0.1:8080"),
                   help="coordinator URL; several, comma-separated, for a farm that more "
                        "than one coordinator serves: tried in turn (default: "
                        "$BRENDER_COORDINATOR, else http://127.0.0.1:8080)")
    p.add_argument("--token", default=os.environ.get("BRENDER_TOKEN"),
                   help="farm token (default: $BRENDER_TOKEN)")
    p.add_argument("--blender", default=os.environ.get("BRENDER_BLENDER") or "blender")
    p.add_argument("--name", default=socket.gethostname())
    p.add_argument("--work-dir", help="cache and scratch space (default ~/.cache/brender-node/NAME)")
    p.add_argument("--tags", default="", help="comma-separated, e.g. gpu,big-ram")
    p.add_argument("--allow-scripts", action="store_true",
                   help="let shots that ask for it run Python inside their .blend")
    p.add_argument("--hang-timeout", type=float, default=300.0,
                   help="kill Blender after this many seconds without output")
    p.add_argument("--no-warm", action="store_true",
                   help="start Blender for every chunk instead of keeping it per shot")
    p.add_argument("--no-spare", action="store_true",
                   help="do not keep a Blender started while idle for the next shot")
    p.add_argument("--recycle-after", type=int, default=500,
                   help="restart a warm Blender session after this many frames")
    p.add_argument("--upload-tries", type=int, default=8,
                   help="tries per frame upload before the job is failed and retried")
    p.add_argument("--cache-size", type=size, default="20G",
                   help="keep the work dir's shot files under this size, e.g. 20G (a shot in "
                        "use is kept whatever its size)")
    p.add_argument("--cache-days", type=float, default=DEFAULT_CACHE_AGE / 86400,
                   help="remove a shot's files after this many days unused")
    p.add_argument("--version", action="version", version=__version__)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.token:
        sys.exit("brender-node: give the farm token with --token or BRENDER_TOKEN")
    blender = shutil.which(args.blender) or args.blender
    if not Path(blender).is_file():
        sys.exit(f"brender-node: Blender not found at {args.blender!r}; use --blender PATH")
    work_dir = Path(args.work_dir or Path.home() / ".cache" / "brender-node" / args.name)
    options = NodeOptions(blender=blender, work_dir=work_dir.resolve(),
                          hang_timeout=args.hang_timeout, warm_sessions=not args.no_warm,
                          recycle_after=args.recycle_after, allow_scripts=args.allow_scripts,
                          upload_tries=max(1, args.upload_tries), spare=not args.no_spare,
                          cache_size=args.cache_size, cache_max_age=args.cache_days * 86400)
    agent = Agent(AgentConfig(coordinator=args.coordinator, token=args.token, name=args.name,
                              options=options,
                              tags=[t.strip() for t in args.tags.split(",") if t.strip()]))
    try:
        asyncio.run(_run(agent))
    except PermissionError:
        sys.exit(1)


async def _run(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    await agent.run()


if __name__ == "__main__":
    main()
