"""The history's HTTP JSON API and page, on the live view's server, or on `mmstream serve --db`
over the fleet's PostgreSQL store (fleet.py); the server's guard (web/access.py) runs first.
Every answer comes from the one query interface (mmstream/history/query.py); the database runs
in a worker thread, never on the event loop.

    GET /history                  the page (its address carries the query: ?q=package&stream=door)
    GET /api/search?q=&stream=&device=&type=&tag=&emotion=&since=&until=&limit=
                                  {"moments": [...]}; a bad query: 400 {"error": "one line"}
    GET /api/timeline?day=YYYY-MM-DD[&stream=]
                                  {"day", "start", "end", "streams": [{speech, tags, emotions}]}
    GET /api/streams              {"streams": [...]}
    GET /api/thumbnail/<id>.jpg   a stored picture
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from mmstream.errors import MmstreamError
from mmstream.history.query import History, Query, QueryError, parse_when
from mmstream.history.search import open_history
from mmstream.web.assets import render

StorePath = Callable[[], Path | None]
PAGE_POLICY = ("default-src 'none'; connect-src 'self'; img-src 'self' data:; "
               "media-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class HistoryApi:
    """The device's store at `store_path()`; or, given `fleet`, that store of many devices
    (the page then offers a device filter and no live view)."""

    def __init__(self, store_path: StorePath, device_id: Callable[[], str],
                 fleet: History | None = None) -> None:
        self.store_path = store_path
        self.device_id = device_id
        self.fleet = fleet
        self._history: History | None = None
        self._path: Path | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/history", self._page)
        app.router.add_get("/api/search", self._search)
        app.router.add_get("/api/timeline", self._timeline)
        app.router.add_get("/api/streams", self._streams)
        app.router.add_get("/api/thumbnail/{id:\\d+}.jpg", self._thumbnail)

    def _store(self) -> History:
        if self.fleet is not None:
            return self.fleet
        path = self.store_path()
        if path is None:
            raise QueryError("this daemon keeps no history (history.enabled: false)")
        if self._history is None or self._path != path:
            self._history, self._path = open_history(path), path
        return self._history

    async def _answer(self, work: Callable[[History], Any]) -> web.StreamResponse:
        try:
            result = await asyncio.to_thread(lambda: work(self._store()))
        except MmstreamError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result, headers={"Cache-Control": "no-store"})

    async def _page(self, request: web.Request) -> web.StreamResponse:
        page = render("history.html.j2", device_id=self.device_id(),
                      fleet=self.fleet is not None)
        return web.Response(text=page, content_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY,
                                     "Cache-Control": "no-store"})

    async def _search(self, request: web.Request) -> web.StreamResponse:
        try:
            query = query_from(request.query)
        except (QueryError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return await self._answer(lambda store: {
            "moments": [moment.as_json() for moment in store.search(query)]})

    async def _timeline(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("day") or datetime.now().strftime("%Y-%m-%d")
        try:
            day = datetime.fromisoformat(text).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        except ValueError:
            return web.json_response({"error": f"day {text!r}: use YYYY-MM-DD"}, status=400)
        start, end = day.timestamp(), (day + timedelta(days=1)).timestamp()
        streams = tuple(request.query.getall("stream", []))
        return await self._answer(lambda store: {
            "day": day.strftime("%Y-%m-%d"), "start": start, "end": end,
            "streams": [d.as_json() for d in store.timeline(start, end, streams)]})

    async def _streams(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(lambda store: {"streams": store.streams()})

    async def _thumbnail(self, request: web.Request) -> web.StreamResponse:
        picture_id = int(request.match_info["id"])
        try:
            jpeg = await asyncio.to_thread(lambda: self._store().thumbnail(picture_id))
        except MmstreamError:
            jpeg = None
        if jpeg is None:
            raise web.HTTPNotFound()
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "max-age=3600"})

    def close(self) -> None:
        for store in (self._history, self.fleet):
            if store is not None:
                store.close()


def query_from(params: Any) -> Query:
    """The API's parameters (the CLI's options by the same names) as a Query."""
    since, until = params.get("since"), params.get("until")
    return Query(text=params.get("q", ""), streams=tuple(params.getall("stream", [])),
                 devices=tuple(params.getall("device", [])),
                 types=tuple(params.getall("type", [])), tags=tuple(params.getall("tag", [])),
                 emotions=tuple(params.getall("emotion", [])),
                 since=parse_when(since, "since") if since else None,
                 until=parse_when(until, "until") if until else None,
                 limit=int(params.get("limit", "50")))
