"""`brender-coordinator`: start the farm's server, optionally with a local node."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys

from aiohttp import web

from . import __version__, admin_cli, gc_pacing, tls
from .app import create_app
from .config import Config, resolve_token
from .delivery_paths import parse_roots
from .database import open_database


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="brender-coordinator", description=__doc__)
    p.add_argument("--data-dir", default="brender-data",
                   help="database, uploads, frames and thumbnails (default ./brender-data)")
    p.add_argument("--database", default=os.environ.get("BRENDER_DATABASE", ""),
                   help="sqlite:///path (default: brender.db in the data dir) or "
                        "postgresql://user@host/db, which several coordinators may share "
                        "(default: $BRENDER_DATABASE)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", help="farm token (default: $BRENDER_TOKEN, else generated)")
    p.add_argument("--local-node", action="store_true",
                   help="also run a render node on this machine")
    p.add_argument("--blender", help="Blender binary for --local-node")
    p.add_argument("--lock-reads", action="store_true",
                   help="require the token for read-only API and dashboard data too")
    p.add_argument("--tls-cert", help="serve HTTPS and WSS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name clients reach the coordinator by (addresses, localhost "
                        "and this machine's names are always served); repeatable")
    p.add_argument("--lease-timeout", type=float, default=30.0,
                   help="seconds a silent node keeps its job before it is requeued")
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--max-upload-mb", type=int, default=4096)
    p.add_argument("--target-job-seconds", type=float, default=60.0)
    p.add_argument("--upload-min-rate-kb", type=float, default=16.0,
                   help="uploads slower than this (KiB/s on average) are cut off")
    p.add_argument("--upload-stall-timeout", type=float, default=30.0,
                   help="seconds an upload may fall behind that rate (a silent client: "
                        "seconds after its last byte)")
    p.add_argument("--upload-timeout", type=float, default=3600.0,
                   help="seconds an upload may take in all")
    p.add_argument("--max-event-streams", type=int, default=1000,
                   help="dashboards' event streams (/api/events) open at once, in all")
    p.add_argument("--max-event-streams-per-address", type=int, default=20,
                   help="event streams open at once from one client address")
    p.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="auto: uvloop when installed (faster), else asyncio's own")
    p.add_argument("--output-root", action="append", default=[], metavar="[NAME=]PATH",
                   help="a folder shots may deliver their frames to (repeat for more)")
    p.add_argument("--delivery-copies", action="store_true",
                   help="deliver every frame as a copy of its own; by default a frame "
                        "delivered to the data dir's file system is a read-only hard link "
                        "to the farm's file (no bytes copied)")
    p.add_argument("--webhook-retry-seconds", type=float, default=5.0,
                   help="first wait before a failed webhook delivery is retried (doubles)")
    p.add_argument("--ffmpeg", default="ffmpeg",
                   help="the ffmpeg that makes preview movies (default: ffmpeg on PATH)")
    p.add_argument("--movie-segment-frames", type=int, default=24,
                   help="make a rendering shot's preview movie in parts of this many frames")
    p.add_argument("--audit-days", type=_audit_days, default=90, metavar="DAYS",
                   help="days the audit log keeps its entries (default 90; 0: forever)")
    p.add_argument("--version", action="version", version=__version__)
    return p.parse_args(argv)


def _audit_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = -1
    if not 0 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"must be a whole number of days from 0 to 36500, "
                                         f"not {text!r}")
    return days


def migrate_main(argv: list[str]) -> None:
    """`brender-coordinator migrate --to postgresql://...`"""
    from .farm_migration import MigrationError, copy_farm
    p = argparse.ArgumentParser(
        prog="brender-coordinator migrate",
        description="Copy a SQLite farm into an empty PostgreSQL database and check the "
                    "counts. Stop the coordinator first; the data dir stays as it is.")
    p.add_argument("--data-dir", default="brender-data",
                   help="the farm's data dir (its brender.db is copied)")
    p.add_argument("--from", dest="source", default="",
                   help="sqlite:///path of the database (default: the data dir's)")
    p.add_argument("--to", required=True, help="postgresql://user@host/db (empty)")
    args = p.parse_args(argv)
    source = open_database(args.source, Config(data_dir=args.data_dir).data_dir)
    if not isinstance(source.path, os.PathLike) or not args.to.startswith("postgres"):
        raise SystemExit("migrate: --from must be sqlite:///path and --to postgresql://...")
    try:
        counts = asyncio.run(copy_farm(source.path, args.to))
    except MigrationError as exc:
        raise SystemExit(f"migrate: {exc}") from None
    print("Copied and checked: " + ", ".join(f"{t} {n}" for t, n in counts.items()),
          flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        return migrate_main(argv[1:])
    if argv and argv[0] in admin_cli.COMMANDS:
        admin_cli.main(argv)
        return
    args = parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("brender-coordinator: give both --tls-cert and --tls-key")
    try:
        output_roots = parse_roots(args.output_root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    config = Config(data_dir=args.data_dir, database=args.database, host=args.host, port=args.port, token=args.token,
                    lock_reads=args.lock_reads, lease_timeout=args.lease_timeout,
                    max_attempts=args.max_attempts,
                    max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                    target_job_seconds=args.target_job_seconds,
                    upload_min_rate=args.upload_min_rate_kb * 1024,
                    upload_stall_seconds=args.upload_stall_timeout,
                    upload_max_seconds=args.upload_timeout,
                    max_event_streams=args.max_event_streams,
                    max_event_streams_per_address=args.max_event_streams_per_address,
                    allowed_hosts=tuple(h.lower() for h in args.allowed_host),
                    tls_cert=args.tls_cert, tls_key=args.tls_key,
                    output_roots=output_roots, webhook_retry_seconds=args.webhook_retry_seconds,
                    delivery_links=not args.delivery_copies,
                    ffmpeg=args.ffmpeg, movie_segment_frames=args.movie_segment_frames,
                    audit_days=args.audit_days)
    token, generated = resolve_token(config)
    if generated:
        print(f"Generated the admin token (saved in {config.data_dir / 'token'}):\n  {token}\n"
              "Make artist tokens and node join codes with it: brender-coordinator token "
              "create / join-code, or the dashboard's Admin view.", flush=True)
    context = tls.server_context(config)
    url = f"{'https' if context else 'http'}://{args.host}:{args.port}"
    print(f"Brender {__version__} coordinator on {url} (data: {config.data_dir})", flush=True)
    node = _start_local_node(url, token, args.blender, args.tls_cert) \
        if args.local_node else None
    gc_pacing.tune_at_start()
    # A worker thread busy in Python (a big listing's page, a blob check) keeps the GIL
    # for up to this long each time the event loop wants it back: 5 ms by default,
    # paid on every await that crosses threads (benchmarks/edge.py: GET /api/farm's
    # p50 went from 28 to 11 ms at 1 ms, with big reads and blob checks running).
    sys.setswitchinterval(0.001)
    try:
        app = create_app(config, token)
        app.cleanup_ctx.append(gc_pacing.pacing_ctx)
        web.run_app(app, host=args.host, port=args.port,
                    print=None, handle_signals=True, loop=_event_loop(args.event_loop),
                    ssl_context=context)
    finally:
        if node is not None and node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()


def _event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: the event loop's own work (sockets, wake-ups,
    callbacks from the database and file threads) is most of the coordinator's CPU
    per frame, and uvloop does it in C."""
    if kind != "asyncio":
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise SystemExit("--event-loop uvloop: uvloop is not installed") from None
    return asyncio.new_event_loop()


def _start_local_node(url: str, token: str, blender: str | None,
                      tls_cert: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "node.cli", "--coordinator", url, "--name",
           f"{os.uname().nodename}-local"]
    if tls_cert:  # a self-signed certificate is its own CA
        cmd += ["--ca-file", tls_cert]
    if blender:
        cmd += ["--blender", blender]
    env = dict(os.environ, BRENDER_TOKEN=token)
    return subprocess.Popen(cmd, env=env)


if __name__ == "__main__":
    main()
