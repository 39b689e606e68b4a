"""The demo prints its lines in time order, whatever order the broker delivered them in."""

from __future__ import annotations

import math

from mmstream.cli.demo import TimeOrder
from mmstream.events import Event, Scene, SceneEvent, Status, StatusEvent
from tests.web.live_helpers import transcript


def window(t: float, seq: int) -> SceneEvent:
    return SceneEvent(stream_id="cam", t_capture=t, seq=seq, payload=Scene(tags=[]))


def shown(order: TimeOrder, arriving: list[Event]) -> list[tuple[float, int]]:
    out = [event for item in arriving for event in order.add(item)] + order.flush()
    return [(event.t_capture, event.seq) for event in out]


def test_a_window_that_arrives_after_a_later_transcript_is_printed_before_it() -> None:
    # as the real-time demo delivered them: the 2.6 s partial before the 2.0 s window
    arriving = [transcript("hello", False, t=0.6, seq=1), transcript("hello", True, t=2.0, seq=2),
                transcript("I am", False, t=2.6, seq=3), window(2.0, 4), window(3.0, 5),
                transcript("I am very happy", False, t=3.6, seq=6), window(4.0, 7),
                window(6.0, 8)]
    order = TimeOrder(hold_s=2.0)
    released_early = [event.seq for item in arriving[:5] for event in order.add(item)]
    assert released_early == [1]  # 0.6 s went out once the media was 2 s past it
    assert shown(TimeOrder(hold_s=2.0), arriving) == [
        (0.6, 1), (2.0, 2), (2.0, 4), (2.6, 3), (3.0, 5), (3.6, 6), (4.0, 7), (6.0, 8)]


def test_the_fast_demo_holds_everything_to_the_end_and_status_goes_out_at_once() -> None:
    order = TimeOrder(hold_s=math.inf)
    assert order.add(window(5.0, 9)) == []
    status = StatusEvent(stream_id="cam", t_capture=1.7e9, seq=10,
                         payload=Status(state="reconnecting", message="gone"))
    assert order.add(status) == [status]
    assert shown(order, [transcript("a", True, t=7.1, seq=3), window(2.0, 1)]) == [
        (2.0, 1), (5.0, 9), (7.1, 3)]
