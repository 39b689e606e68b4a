"""The retained states Home Assistant's entities read: presence held so it does not flap,
speech from an utterance's first partial to its final, the last final with what an automation
needs, the control state, and a camera picture with the faces and tags drawn."""

from __future__ import annotations

import json

import cv2
import numpy as np

from mmstream.config.sinks import HomeAssistantConfig
from mmstream.events import Fused, FusedEvent, Tag, Transcript, TranscriptEvent
from mmstream.media import AnalysedFrame, EndOfStream, FaceMark
from mmstream.runtime.control import PipelineControl
from mmstream.sinks.mqtt.homeassistant import HomeAssistantStates
from tests.conftest import async_wait_until


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def of(self, name: str) -> list[bytes]:
        return [payload for topic, payload in self.messages if topic.endswith(f"/ha/{name}")]


def window(t: float, face: bool = False, tags: tuple[str, ...] = ()) -> FusedEvent:
    return FusedEvent(stream_id="cam0", t_capture=t, payload=Fused(
        window_start=t - 2, window_end=t, scene=[Tag(label, 0.9) for label in tags],
        modalities=["image", *(["face"] if face else [])]))


def states(published: Published, hold_s: float = 3.0) -> HomeAssistantStates:
    config = HomeAssistantConfig(enabled=True, presence_hold_s=hold_s, snapshot_interval_s=0.1)
    return HomeAssistantStates(config, "mm", "kitchen", published)


def test_presence_turns_on_with_a_face_or_a_person_and_off_after_the_hold() -> None:
    published = Published()
    ha = states(published)
    for event in (window(1), window(2, face=True), window(3), window(4), window(5),
                  window(6), window(7, tags=("person",)), window(8)):
        ha.event(event)
    # off at 1 s, on at 2 s (face), held through 3-4 s, off at 5 s (3 s after), on at 7 s
    assert published.of("presence") == [b"OFF", b"ON", b"OFF", b"ON"]
    assert published.messages[0][0] == "mm/kitchen/cam0/ha/presence"
    ha.media(EndOfStream("cam0", 9.0))
    assert published.of("presence")[-1] == b"OFF"


def test_speech_and_the_last_final() -> None:
    published = Published()
    ha = states(published)

    def said(text: str, final: bool, t: float) -> TranscriptEvent:
        return TranscriptEvent(stream_id="mic0", t_capture=t, t_publish=1_700_000_000 + t,
                               payload=Transcript(final=final, text=text, start=0.5, end=t,
                                                  confidence=0.8, utterance_id=3))

    for event in (said("the par", False, 1.0), said("the parcel is", False, 2.0),
                  said("The parcel is here.", True, 2.8)):
        ha.event(event)
    assert published.of("speech") == [b"ON", b"OFF"]
    final = json.loads(published.of("final")[0])
    assert final == {"text": "The parcel is here.", "confidence": 0.8, "start": 0.5,
                     "end": 2.8, "time": 1_700_000_002.8, "stream_id": "mic0",
                     "utterance_id": 3}


def test_the_control_state_is_what_the_device_does() -> None:
    published = Published()
    ha = states(published)
    control = PipelineControl()
    control.apply(b'{"command": "set_fps", "fps": 1.5}')
    control.apply(b'{"command": "pause"}')
    ha.control(control)
    topic, payload = published.messages[-1]
    assert topic == "mm/kitchen/ha/control"
    assert json.loads(payload) == {"paused": True, "fps": 1.5}


async def test_the_camera_picture_shows_the_faces_and_tags_at_most_once_per_interval() -> None:
    published = Published()
    ha = states(published)
    image = np.full((480, 640, 3), 200, dtype=np.uint8)
    frame = AnalysedFrame("cam0", 2.0, image, 1.9, (FaceMark(100, 100, 120, 150),),
                          (("person", 0.93),), "happy", 0.6)
    ha.media(frame)
    ha.media(frame)  # due only after snapshot_interval_s: ignored
    await async_wait_until(lambda: published.of("snapshot"), 10, "the picture")
    await ha.close()
    pictures = published.of("snapshot")
    assert len(pictures) == 1
    picture = cv2.imdecode(np.frombuffer(pictures[0], np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (480, 640, 3)
    assert tuple(picture[100, 160]) != (200, 200, 200)  # the face box's top edge is drawn
    assert picture[5:30, 5:200].mean() < 150  # the caption band (tags, emotion) on top
