"""A node's own credential (issue 18): `brender-node --join CODE` trades a one-time
join code for it and saves it (0600) in the work dir, beside the cache, so the code
is never needed (or spent) again; later starts read it from there."""
from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

CREDENTIAL_FILE = "credential"


class JoinError(Exception):
    pass


def saved_token(work_dir: Path) -> str | None:
    try:
        data = json.loads((work_dir / CREDENTIAL_FILE).read_text())
    except (OSError, ValueError):
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def join(coordinator: str, code: str, name: str, work_dir: Path,
         context: ssl.SSLContext | None) -> str:
    """Redeem the code, save the credential and the node id it names; the token."""
    body = json.dumps({"code": code, "name": name}).encode()
    request = urllib.request.Request(f"{coordinator.rstrip('/')}/api/join", data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read() or b"{}").get("error") or err.reason
        except ValueError:
            message = err.reason
        raise JoinError(f"the coordinator refused the join code: {message}") from None
    except (urllib.error.URLError, OSError) as err:
        raise JoinError(f"cannot reach the coordinator at {coordinator}: "
                        f"{getattr(err, 'reason', err)}") from None
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / CREDENTIAL_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"token": answer["token"], "node_id": answer["node_id"],
                   "credential_id": answer["credential_id"], "coordinator": coordinator}, f)
    os.chmod(path, 0o600)
    (work_dir / "node_id").write_text(answer["node_id"])
    return str(answer["token"])
