"""Stalled uploads are cut off and the coordinator's memory comes back (issue 12,
item 5: 40 uploads stalled after 7 MB held +286 MB for as long as they stayed open)."""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

from tests.farm import wait_for

STALLED = 40
SENT = 7 * 2**20


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024


def test_stalled_uploads_end_and_give_their_memory_back(farm_factory):
    farm = farm_factory(upload_stall_timeout=2)
    pid = farm.coordinator.pid
    before = rss_mb(pid)
    body = os.urandom(SENT)
    socks = []
    try:
        for i in range(STALLED):
            s = socket.create_connection(("127.0.0.1", farm.port))
            s.sendall(f"PUT /api/blobs/{i:064x} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {farm.token}\r\n"
                      f"Content-Length: {SENT + 2**20}\r\n\r\n".encode() + body)
            socks.append(s)
        held = wait_for(lambda: rss_mb(pid) - before > 150 and rss_mb(pid), 20,
                        what="the stalled bodies to arrive")
        for s in socks:
            s.settimeout(15)
            assert s.recv(64).startswith(b"HTTP/1.1 408"), "the upload was not cut off"
        time.sleep(1)
        after = rss_mb(pid)
        assert after - before < 40, (before, held, after)
    finally:
        for s in socks:
            s.close()
    assert list((farm.data_dir / "tmp").iterdir()) == []
    assert farm.client().version()
