"""How clients reach the coordinator safely (issue 18), standard library only: the
node, the add-on and `brender-submit` share it.

A token sent over plain HTTP can be read by anyone on the path, so a client refuses
`http://` to anything but this machine unless told `insecure`. Over HTTPS the
certificate is always verified: against the system's store, or a `ca_file`.
"""
from __future__ import annotations

import ipaddress
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


class InsecureURL(ValueError):
    """A plain-HTTP coordinator on another machine, and no `insecure`."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, insecure: bool = False) -> str:
    """The coordinator's URL, refused when it would send tokens in the clear."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise InsecureURL(f"{url!r}: the coordinator's URL starts with https:// or http://")
    if parts.scheme in ("http", "ws") and not insecure and not is_loopback(parts.hostname or ""):
        raise InsecureURL(
            f"{url} is plain HTTP on another machine: tokens would cross the network in the "
            "clear. Serve the coordinator with --tls-cert/--tls-key and use https://, or "
            "pass --insecure (add-on: the Insecure preference) on a network you trust.")
    return url


def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Verifies the coordinator's certificate and host name: the system's store, plus
    `ca_file` (a private CA or a self-signed certificate) when given. `ssl` is imported
    here, not above: a Python built without it (some Blender builds) still talks
    plain HTTP to this machine."""
    import ssl
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context
