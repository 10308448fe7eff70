"""Headers that keep a browser from running what it should not (issue 18).

The dashboard is ES modules from this origin and nothing inline, so its policy
forbids inline script outright: a name, log line, tag or reason that slipped into
the page as markup still could not run. Styles set through the DOM (`el.style`)
are not inline markup and stay allowed. There are no cookies: every call carries its
token in a header, which another site's page cannot make a browser send (CSRF).
"""
from __future__ import annotations

from aiohttp import web

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_headers)
