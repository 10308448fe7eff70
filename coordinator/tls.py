"""HTTPS and WSS for the coordinator (issue 18): `--tls-cert` and `--tls-key`."""
from __future__ import annotations

import ssl

from .config import Config


def server_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None to serve plain HTTP (loopback, or a proxy that
    terminates TLS in front)."""
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"brender-coordinator: cannot load --tls-cert/--tls-key: {exc}") \
            from None
    return context
