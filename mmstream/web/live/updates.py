"""Pushing the live view to a viewer: one Server-Sent Events stream per open page.

The first message carries everything (`full`), later ones only what changed since (new
transcript lines or a partial turned final, mood points, events), a stream's new picture when
one is due (at most `frame_fps` a second: the page then fetches `frame/<stream>.jpg`), and the
health panel every couple of seconds. Changes are coalesced: at most a few messages a second,
however busy the pipeline, and none while nothing happens but the health beat. A message
says the run's `phase` when it changes (loading, live, ended); once the run has ended the
stream sends an `ended` event and closes, so the page can tell a finished run from a daemon
that went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web
from aiohttp_sse import sse_response

from mmstream.web.live.view import LiveView

MIN_INTERVAL_S = 0.25  # at most 4 messages a second per viewer
HEALTH_INTERVAL_S = 2.0
PING_S = 15.0  # a comment line now and then keeps proxies from closing an idle stream
RETRY_MS = 1000  # how soon the browser reconnects after the stream ends (a restart)


class Viewer:
    """What one open page has been sent: the state's revision, the pictures, the health."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.revision = 0
        self.frames: dict[str, int] = {}  # stream -> frame number announced
        self.frame_sent_at = float("-inf")
        self.health_sent_at = float("-inf")
        self.phase = ""

    def next_message(self, now: float) -> dict[str, Any] | None:
        """The news since the last message (None: nothing worth sending yet)."""
        state, full = self.view.state, self.revision == 0
        streams = state.changes_since(self.revision)
        self.revision = state.revision
        for stream_id, frame in self._due_frames(now).items():
            streams.setdefault(stream_id, {})["frame"] = frame
        message: dict[str, Any] = {"full": full}
        if self.view.phase != self.phase:
            message["phase"] = self.phase = self.view.phase
        if streams:
            message["streams"] = streams
        if full or now - self.health_sent_at >= HEALTH_INTERVAL_S:
            message["health"] = self.view.health.snapshot()
            message["viewers"] = self.view.viewers
            self.health_sent_at = now
        return message if len(message) > 1 else None

    def _due_frames(self, now: float) -> dict[str, Any]:
        if not self._frame_waiting() or now - self.frame_sent_at < self.view.frame_interval_s:
            return {}
        frames = {}
        for stream_id, state in self.view.state.streams.items():
            if state.frame is not None and self.frames.get(stream_id) != state.frame_no:
                frames[stream_id] = state.frame_json()
                self.frames[stream_id] = state.frame_no
        self.frame_sent_at = now
        return frames

    def _frame_waiting(self) -> bool:
        return any(state.frame is not None and self.frames.get(stream_id) != state.frame_no
                   for stream_id, state in self.view.state.streams.items())

    def patience_s(self, now: float) -> float:
        """How long to wait for news before a message is due anyway (health, a held frame)."""
        due = self.health_sent_at + HEALTH_INTERVAL_S
        if self._frame_waiting():
            due = min(due, self.frame_sent_at + self.view.frame_interval_s)
        return max(0.0, due - now)


async def stream_updates(request: web.Request, view: LiveView,
                         streams: set[asyncio.Task[Any]]) -> web.StreamResponse:
    """The `/updates` handler: runs until the page goes away or the server closes."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    async with sse_response(request, ping_interval=PING_S,
                            headers={"Cache-Control": "no-store"}) as sse:
        view.viewer_joined()
        if task is not None:
            streams.add(task)  # the server cancels these when it closes
        try:
            viewer = Viewer(view)
            retry: int | None = RETRY_MS
            while sse.is_connected():
                message = viewer.next_message(loop.time())
                if message is not None:
                    await sse.send(msgspec.json.encode(message).decode(), event="update",
                                   retry=retry)
                    retry = None  # said once is enough
                if viewer.phase == "ended":  # everything there was has been sent
                    await sse.send("{}", event="ended")  # the page stops reconnecting
                    break
                await asyncio.sleep(MIN_INTERVAL_S)
                await view.state.wait_newer(viewer.revision, viewer.patience_s(loop.time()))
        finally:
            view.viewer_left()
            streams.discard(task)  # type: ignore[arg-type]
    return sse
