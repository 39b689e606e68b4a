"""The states Home Assistant's entities read, derived from the events (docs/mqtt.md).

Events already carry everything, but an automation wants a few plain, retained states:

- `<prefix>/<device>/<stream>/ha/presence`: "ON"/"OFF", a person present — a face in the
  window, or the `person` scene tag — held on `presence_hold_s` (media time) after the last
  such window, so it does not flap;
- `.../ha/speech`: "ON" while an utterance is being spoken (from its first partial to its
  final), "OFF" after;
- `.../ha/final`: the last final transcript (text, confidence, start, end, time), retained, so
  the transcript sensor shows it after a restart of either side;
- `.../ha/snapshot`: the latest analysed frame as a JPEG with its faces and tags drawn, at
  most one per `snapshot_interval_s`, encoded off the event loop;
- `<prefix>/<device>/ha/control`: the device's real control state (paused, fps), for the
  analysis switch and the frame-rate number.

Each is published only when it changes (the snapshot when it is due) and is retained.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from mmstream.config.sinks import HomeAssistantConfig
from mmstream.events import Event, FusedEvent, TranscriptEvent
from mmstream.media import AnalysedFrame, EndOfStream
from mmstream.runtime.control import PipelineControl

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # (topic, payload): retained, now and on reconnect


def ha_topic(prefix: str, device_id: str, stream: str, name: str) -> str:
    return f"{prefix}/{device_id}/{stream}/ha/{name}"


def control_state_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/ha/control"


@dataclass
class _Stream:
    present: bool | None = None
    last_person_t: float = float("-inf")
    speaking: bool | None = None
    last_snapshot: float = float("-inf")  # monotonic
    rendering: bool = False


class HomeAssistantStates:
    """Turns a device's events and analysed frames into the retained states above."""

    def __init__(self, config: HomeAssistantConfig, prefix: str, device_id: str,
                 publish: Publish) -> None:
        self.config = config
        self.prefix = prefix
        self.device_id = device_id
        self.publish = publish
        self.streams: dict[str, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _state(self, stream: str) -> _Stream:
        return self.streams.setdefault(stream, _Stream())

    def _set(self, stream: str, name: str, payload: bytes) -> None:
        self.publish(ha_topic(self.prefix, self.device_id, stream, name), payload)

    def event(self, event: Event) -> None:
        if isinstance(event, FusedEvent):
            self._presence(event)
        elif isinstance(event, TranscriptEvent):
            self._speech(event)

    def _presence(self, event: FusedEvent) -> None:
        state, window = self._state(event.stream_id), event.payload
        person = "face" in window.modalities or any(t.label == "person" for t in window.scene)
        if person:
            state.last_person_t = event.t_capture
        present = person or event.t_capture - state.last_person_t < self.config.presence_hold_s
        if present != state.present:
            state.present = present
            self._set(event.stream_id, "presence", b"ON" if present else b"OFF")

    def _speech(self, event: TranscriptEvent) -> None:
        state, said = self._state(event.stream_id), event.payload
        speaking = not said.final
        if speaking != state.speaking:
            state.speaking = speaking
            self._set(event.stream_id, "speech", b"ON" if speaking else b"OFF")
        if said.final and said.text:
            self._set(event.stream_id, "final", json.dumps({
                "text": said.text, "confidence": said.confidence, "start": said.start,
                "end": said.end, "time": event.t_publish, "stream_id": event.stream_id,
                "utterance_id": said.utterance_id}).encode())

    def media(self, item: object) -> None:
        if isinstance(item, AnalysedFrame):
            self._snapshot(item)
        elif isinstance(item, EndOfStream):  # nothing is seen or said on an ended stream
            state = self._state(item.stream_id)
            for name, on in (("presence", state.present), ("speech", state.speaking)):
                if on:
                    self._set(item.stream_id, name, b"OFF")
            state.present = state.speaking = False

    def _snapshot(self, frame: AnalysedFrame) -> None:
        state, now = self._state(frame.stream_id), time.monotonic()
        if state.rendering or now - state.last_snapshot < self.config.snapshot_interval_s:
            return
        state.rendering, state.last_snapshot = True, now
        task = asyncio.get_running_loop().create_task(self._render(frame, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _render(self, frame: AnalysedFrame, state: _Stream) -> None:
        from mmstream.snapshot import render_snapshot

        try:
            jpeg = await asyncio.to_thread(render_snapshot, frame, self.config.snapshot_width)
            self._set(frame.stream_id, "snapshot", jpeg)
        except Exception as exc:  # a picture is not worth stopping the device for
            log.warning("snapshot of %s failed: %s", frame.stream_id, exc)
        finally:
            state.rendering = False

    def control(self, control: PipelineControl | None) -> None:
        """The device's control state as it is now (after a command, and at connect)."""
        if control is not None:
            self.publish(control_state_topic(self.prefix, self.device_id),
                         json.dumps({"paused": control.paused, "fps": control.fps}).encode())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
