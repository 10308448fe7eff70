"""A throw-away PostgreSQL cluster for tests: Debian's server binaries, a temp dir,
a Unix socket only (no TCP port to collide with), trust auth. PostgreSQL refuses to
run as root, so as root the cluster runs as the `postgres` user."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

def server_bin() -> Path | None:
    """Where initdb and pg_ctl are (Debian's newest), or None when not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class Cluster:
    PORT = 5432  # only names the socket file: there is no TCP listener

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="brender-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.socket_dir.mkdir()
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            pw = pwd.getpwnam(self._user)
            for p in (self.root, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.superuser = self._user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self) -> "Cluster":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  self.superuser, "-E", "UTF8", "--no-sync")
        self.pg_ctl("start", "-w")
        return self

    def pg_ctl(self, action: str, *extra: str) -> None:
        # fsync off: a test cluster never outlives a crash of the machine.
        options = (f"-k {self.socket_dir} -c listen_addresses='' -p {self.PORT} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), action, "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "log"), "-t", "60", *extra)

    def stop(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@/{database}?host={self.socket_dir}&port={self.PORT}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(str(self.bin / "psql"), "-h", str(self.socket_dir), "-p",
                         str(self.PORT), "-U", self.superuser, "-d", database, "-Atc",
                         sql).stdout

    def new_database(self) -> str:
        """A fresh empty database; its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
