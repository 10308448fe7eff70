"""`brender-node`: a render node that dials the coordinator and renders with Blender."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from brender_protocol import transport

from . import __version__, enroll
from .agent import Agent, AgentConfig
from .cache_cleaning import parse_size
from .installs import NoBlender, resolve
from .runner import DEFAULT_CACHE_AGE, NodeOptions


def size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 20G, 500M)") from None


def gpu_indices(text: str) -> list[int]:
    """"0,1" -> [0, 1]; "none" -> [] (the CPU only)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        indices = [int(i) for i in text.split(",") if i.strip()]
    except ValueError:
        indices = [-1]
    if any(i < 0 for i in indices):
        raise argparse.ArgumentTypeError(f"not GPU indices: {text!r} (e.g. 0,1 or none)")
    return sorted(set(indices))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-node", description=__doc__)
    p.add_argument("--coordinator", default=os.environ.get("BRENDER_COORDINATOR",
                                                           "http://127.0.0.1:8080"),
                   help="coordinator URL; several, comma-separated, for a farm that more "
                        "than one coordinator serves: tried in turn (default: "
                        "$BRENDER_COORDINATOR, else http://127.0.0.1:8080)")
    p.add_argument("--token", default=os.environ.get("BRENDER_TOKEN"),
                   help="this node's credential (default: $BRENDER_TOKEN, else the one "
                        "--join saved in the work dir)")
    p.add_argument("--join", metavar="CODE",
                   help="trade a one-time join code (brender-coordinator join-code) for "
                        "this node's own credential, saved in the work dir")
    p.add_argument("--ca-file", default=os.environ.get("BRENDER_CA_FILE"),
                   help="verify an https:// coordinator against this certificate (PEM) too")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain http:// to another machine (the credential is sent "
                        "in clear)")
    p.add_argument("--blender", action="append", metavar="PATH",
                   help="a Blender binary, or the python of a venv with the bpy module; "
                        "repeat to offer several versions (default: $BRENDER_BLENDER or "
                        "blender; the first is the default version)")
    p.add_argument("--gpus", type=gpu_indices, default=None, metavar="0,1",
                   help="the GPUs to render with, by index within each Cycles device "
                        "type, e.g. 0 for one node per GPU, or none (default: all)")
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
    given = args.blender or [os.environ.get("BRENDER_BLENDER") or "blender"]
    try:
        blenders = [resolve(b) for b in given]
    except NoBlender as exc:
        sys.exit(f"brender-node: {exc}")
    work_dir = Path(args.work_dir or Path.home() / ".cache" / "brender-node" / args.name)
    try:
        transport.check_url(args.coordinator, args.insecure)
        context = transport.ssl_context(args.ca_file) \
            if args.coordinator.lower().startswith("https:") else None
    except (transport.InsecureURL, OSError) as exc:
        sys.exit(f"brender-node: {exc}")
    token = args.token or enroll.saved_token(work_dir)
    if args.join and not token:
        try:
            token = enroll.join(args.coordinator, args.join, args.name, work_dir, context)
        except enroll.JoinError as exc:
            sys.exit(f"brender-node: {exc}")
        logging.info("joined the farm; credential saved in %s", work_dir / enroll.CREDENTIAL_FILE)
    if not token:
        sys.exit("brender-node: join the farm with --join CODE, or give a token with --token "
                 "or BRENDER_TOKEN")
    options = NodeOptions(blender=blenders[0], gpus=args.gpus, work_dir=work_dir.resolve(),
                          hang_timeout=args.hang_timeout, warm_sessions=not args.no_warm,
                          recycle_after=args.recycle_after, allow_scripts=args.allow_scripts,
                          upload_tries=max(1, args.upload_tries), spare=not args.no_spare,
                          cache_size=args.cache_size, cache_max_age=args.cache_days * 86400)
    agent = Agent(AgentConfig(coordinator=args.coordinator, token=token, name=args.name,
                              ssl_context=context, options=options, blenders=blenders,
                              tags=[t.strip() for t in args.tags.split(",") if t.strip()]))
    try:
        asyncio.run(_run(agent))
    except PermissionError:
        sys.exit(1)
    except NoBlender as exc:
        sys.exit(f"brender-node: {exc}")


async def _run(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    await agent.run()


if __name__ == "__main__":
    main()
