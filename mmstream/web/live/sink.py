"""The live view's sink: one per pipeline run, feeding the view that outlives it.

It takes every event and the analysed frames (`wants_media`), and is told the pipeline's life
as an observer: which sources are up, which are reconnecting, the read-only view that the
health panel reads. Each call is an append to a bounded buffer, never a wait.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from mmstream.events import Event
from mmstream.media import AnalysedFrame, MediaItem
from mmstream.runtime.observer import PipelineView
from mmstream.runtime.stage import Sink
from mmstream.web.live.health import HealthPanel
from mmstream.web.live.state import LiveState

if TYPE_CHECKING:
    from mmstream.web.live.view import LiveView


class LiveSink(Sink):
    name = "web"
    wants_media = True  # the analysed frames: the picture on the page

    def __init__(self, view: LiveView, state: LiveState, panel: HealthPanel, generation: int,
                 streams: list[str]) -> None:
        self.view = view
        self.state = state
        self.panel = panel
        self.generation = generation  # tells utterances of a reloaded pipeline apart
        for stream_id in streams:  # a card per stream before anything arrives
            state.stream(stream_id)

    def attached(self, pipeline: PipelineView) -> None:
        self.panel.pipeline = pipeline

    def ready(self) -> None:
        self.view.set_phase("live")  # models loaded, sources open: no longer "loading"

    def source_opened(self, source: str) -> None:
        self.panel.sources.set(source, "ok")

    def source_restart(self, source: str, reason: str) -> None:
        self.panel.sources.set(source, "reconnecting", reason)

    def source_ended(self, source: str) -> None:
        self.panel.sources.set(source, "ended")

    async def send(self, event: Event) -> None:
        self.state.add_event(event, self.generation)

    async def send_media(self, item: MediaItem) -> None:
        if isinstance(item, AnalysedFrame):
            self.state.add_frame(item)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.panel.pipeline = None  # between pipelines (a reload) the panel says so
