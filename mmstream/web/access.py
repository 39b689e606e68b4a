"""Who may use mmstream's web servers: the daemon's live view and `mmstream serve --db`.

With a token set, every request must carry it (`Authorization: Bearer …` or `?token=…`); a
wrong or missing one gets a bare 401. Without one the server is on loopback and answers only
requests addressed to a loopback name: a web page elsewhere cannot reach it through DNS
rebinding (a name of the attacker's that resolves to 127.0.0.1).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from mmstream.config.web import is_loopback

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def refused(request: web.Request, token: str | None) -> web.Response | None:
    """The answer to a request that may not pass; None for one that may."""
    if token is not None:
        if not has_token(request, token):
            return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
    elif not is_loopback(request.url.host or ""):
        return web.Response(status=403)  # a non-loopback name for a loopback-only server
    return None


def guard(token: Callable[[], str | None]) -> Callable[[web.Request, Handler],
                                                        Awaitable[web.StreamResponse]]:
    """aiohttp middleware: `refused` first, then the handler, with HEADERS on its answer.
    `token` is read per request (a reload may change it)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        answer = refused(request, token())
        if answer is not None:
            return answer
        response = await handler(request)
        response.headers.update(HEADERS)
        return response

    return middleware


def has_token(request: web.Request, token: str) -> bool:
    offered = request.query.get("token", "")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered = credentials.strip()
    return hmac.compare_digest(offered.encode(), token.encode())
