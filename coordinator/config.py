"""Coordinator settings, gathered from the command line and environment."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .pacing import DEFAULT_PACE, Pace
from .store.credentials import new_token


@dataclass
class Config:
    data_dir: Path = Path("brender-data")
    # "" or sqlite:///path: SQLite (default: brender.db in the data dir);
    # postgresql://user@host/db: PostgreSQL, which several coordinators may share.
    database: str = field(default_factory=lambda: os.environ.get("BRENDER_DATABASE", ""))
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    lock_reads: bool = False
    # Host names served besides addresses, localhost and this machine's names (a
    # DNS-rebinding page comes under a name of its own); TLS (issue 18).
    allowed_hosts: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Failed authentications per client address and minute before it gets 429s.
    max_auth_failures: int = 30
    # Credentials revoked elsewhere (the CLI, another coordinator) are looked for this
    # often; the audit log keeps this many days (0: forever), pruned this often.
    revocation_check_seconds: float = 2.0
    audit_days: int = 90
    audit_prune_seconds: float = 3600.0
    max_upload_bytes: int = 4 * 1024**3
    max_json_bytes: int = 8 * 1024**2
    # Request bodies (uploads and JSON): a minimum average rate, and how far behind it
    # a body may fall (a client silent this long is cut off); a total time limit.
    upload_min_rate: float = DEFAULT_PACE.min_rate
    upload_stall_seconds: float = DEFAULT_PACE.stall
    upload_max_seconds: float = DEFAULT_PACE.total
    # Event streams (/api/events) open at once, in all and from one client address.
    max_event_streams: int = 1000
    max_event_streams_per_address: int = 20
    # How long a lease outlives its node's silence before the job is requeued.
    lease_timeout: float = 30.0
    heartbeat_interval: float = 5.0
    max_attempts: int = 3
    # A node that fails this many jobs of one shot gets no more of them.
    blocklist_threshold: int = 2
    thumbnail_size: int = 240
    thumbnail_workers: int = 2
    frame_workers: int = 2
    # Adaptive chunks aim for jobs that last about this long (seconds).
    target_job_seconds: float = 60.0
    # Issue 17: where frames are delivered ({name: folder}, `delivery_paths.py`), and the
    # first wait before a failed webhook delivery is tried again (it doubles each time).
    output_roots: dict[str, Path] = field(default_factory=dict)
    webhook_retry_seconds: float = 5.0
    # A frame delivered to the data dir's own file system is a read-only hard link to
    # the farm's file (no bytes copied); False: always an independent copy.
    delivery_links: bool = True
    # The ffmpeg that makes preview movies (a name on PATH, or a path).
    ffmpeg: str = "ffmpeg"
    # A rendering shot's movie is made in parts of this many frames as they land.
    movie_segment_frames: int = 24
    dashboard_dir: Path = field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "dashboard_static")

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.tls_cert = Path(self.tls_cert).resolve() if self.tls_cert else None
        self.tls_key = Path(self.tls_key).resolve() if self.tls_key else None

    @property
    def upload_pace(self) -> Pace:
        return Pace(self.upload_min_rate, self.upload_stall_seconds, self.upload_max_seconds)


def resolve_token(config: Config) -> tuple[str, bool]:
    """Return the farm token and whether it was generated just now.

    Order: explicit --token, then BRENDER_TOKEN, then the token saved in the data
    dir, else a new one saved there (readable by its owner only).
    """
    if config.token:
        return config.token, False
    env = os.environ.get("BRENDER_TOKEN")
    if env:
        return env, False
    path = config.data_dir / "token"
    if path.exists():
        return path.read_text().strip(), False
    config.data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True
