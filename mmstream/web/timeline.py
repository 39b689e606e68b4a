"""The report's timeline as data for the page's charts: scene tags as rows of bars over the
windows that saw them (a window's span, from its fused event; a cat that appears at 3.33 s is
drawn from the start of the first window holding it, not from its end), emotion labels as rows
(present at a window's end or not), valence as a line, transcripts under them.

Everything is laid out here, in Python, so the page's script only hands arrays to uPlot; the
charts share one x range (seconds, see `TimeSpan`) and one y-axis width, so their plot areas
and the transcript track line up.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmstream.events import EMOTIONS, EmotionEvent, Event, FusedEvent, SceneEvent, TranscriptEvent
from mmstream.web.summary import TimeSpan

AXIS_PX = 150  # y-axis width of every chart: the plot areas start at the same x
PAD_RIGHT_PX = 16
MAX_TAG_ROWS = 12


@dataclass(frozen=True)
class TranscriptLine:
    stream_id: str
    start: float  # seconds on the report's axis
    end: float
    text: str
    final: bool
    left_pct: float = 0.0  # where it sits on the transcript track
    width_pct: float = 0.0


def chart_data(events: Sequence[Event], span: TimeSpan) -> dict[str, Any]:
    """The JSON the page's script draws: x range, layout, and one block per chart."""
    return {
        "range": [round(span.relative(span.first), 3), round(span.relative(span.last), 3)],
        "axis_px": AXIS_PX, "pad_right_px": PAD_RIGHT_PX,
        "scene": _scene_rows(events, span),
        "emotion": _emotion_rows(events, span),
        "valence": _valence_lines(events, span),
    }


def transcript_lines(events: Sequence[Event], span: TimeSpan) -> list[TranscriptLine]:
    """Every transcript (partials too, the page shows them on request), in time order."""
    width = max(span.duration_s, 1e-9)
    lines = []
    for event in events:
        if isinstance(event, TranscriptEvent):
            start, end = span.relative(event.payload.start), span.relative(event.payload.end)
            left = (start - span.relative(span.first)) / width
            lines.append(TranscriptLine(
                event.stream_id, start, end, event.payload.text, event.payload.final,
                round(100 * min(max(left, 0.0), 1.0), 3),
                round(100 * min(max((end - start) / width, 0.0), 1.0 - max(left, 0.0)), 3)))
    return sorted(lines, key=lambda line: (line.start, not line.final, line.stream_id))


def _scene_rows(events: Sequence[Event], span: TimeSpan) -> dict[str, Any]:
    scenes = [e for e in events if isinstance(e, SceneEvent)]
    source: Sequence[SceneEvent | FusedEvent] = scenes or [
        e for e in events if isinstance(e, FusedEvent)]
    many = len({e.stream_id for e in source}) > 1
    starts = {(e.stream_id, e.t_capture): e.payload.window_start
              for e in events if isinstance(e, FusedEvent)}
    spans: list[tuple[str, float, float]] = []  # (row, window start, window end)
    for event in source:
        tags = event.payload.tags if isinstance(event, SceneEvent) else event.payload.scene
        start = starts.get((event.stream_id, event.t_capture), event.t_capture)
        spans += [(_row(event.stream_id, tag.label, many), span.relative(start),
                   span.relative(event.t_capture)) for tag in tags]
    counts = Counter(row for row, _, _ in spans)
    rows = sorted(counts, key=lambda row: (-counts[row], row))[:MAX_TAG_ROWS]
    return _span_block(rows, spans, hidden=len(counts) - MAX_TAG_ROWS)


def _span_block(rows: list[str], spans: list[tuple[str, float, float]],
                hidden: int) -> dict[str, Any]:
    """Rows over window spans, as uPlot's aligned arrays: a point at every window's start and
    end (and halfway between neighbours, so a stretch no window of a row covers breaks its
    bar) is the row's index where a window holding the row covers it, else null."""
    edges = sorted({round(t, 3) for _, start, end in spans for t in (start, end)})
    x = sorted({*edges, *(round((a + b) / 2, 3) for a, b in itertools.pairwise(edges))})
    values = []
    for n, row in enumerate(rows):
        mine = [(start - 5e-4, end + 5e-4) for name, start, end in spans if name == row]
        values.append([n if any(a <= t <= b for a, b in mine) else None for t in x])
    if all(start == end for _, start, end in spans):  # no spans known: points at the ends
        x = edges
        values = [[n if any(name == row and round(end, 3) == t for name, _, end in spans)
                   else None for t in x] for n, row in enumerate(rows)]
    return {"rows": rows, "x": x, "values": values, "hidden": max(hidden, 0)}


def _emotion_rows(events: Sequence[Event], span: TimeSpan) -> dict[str, Any]:
    many = len({e.stream_id for e in _emotion_source(events)}) > 1
    marks = [(_row(stream, label, many), span.relative(t))
             for stream, t, label, _ in _emotions(events)]
    order = {label: n for n, label in enumerate(EMOTIONS)}
    rows = sorted({row for row, _ in marks},
                  key=lambda row: (order.get(row.rsplit(" · ", 1)[-1], len(order)), row))
    return _rows_block(rows, marks, hidden=0)


def _valence_lines(events: Sequence[Event], span: TimeSpan) -> dict[str, Any]:
    by_stream: dict[str, dict[float, float]] = {}
    for stream, t, _, valence in _emotions(events):
        if valence is not None and math.isfinite(valence):  # JSON has no NaN
            by_stream.setdefault(stream, {})[round(span.relative(t), 3)] = round(valence, 3)
    x = sorted({t for points in by_stream.values() for t in points})
    return {"x": x, "series": [{"label": stream, "values": [points.get(t) for t in x]}
                               for stream, points in sorted(by_stream.items())]}


def _emotion_source(events: Sequence[Event]) -> list[EmotionEvent] | list[FusedEvent]:
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    return emotions or [e for e in events if isinstance(e, FusedEvent) and e.payload.emotion]


def _emotions(events: Sequence[Event]) -> list[tuple[str, float, str, float | None]]:
    """(stream, t, label, valence) per window, from emotion events, else fused ones."""
    found: list[tuple[str, float, str, float | None]] = []
    for event in _emotion_source(events):
        if isinstance(event, EmotionEvent):
            found.append((event.stream_id, event.t_capture, event.payload.label,
                          event.payload.valence))
        else:
            found.append((event.stream_id, event.t_capture, event.payload.emotion or "",
                          event.payload.valence))
    return found


def _row(stream: str, label: str, prefixed: bool) -> str:
    return f"{stream} · {label}" if prefixed else label


def _rows_block(rows: list[str], marks: list[tuple[str, float]], hidden: int) -> dict[str, Any]:
    """uPlot's aligned arrays: one x array; per row, the row's index where present, else
    null (a bar runs through consecutive windows where the row is present)."""
    index = {row: n for n, row in enumerate(rows)}
    x = sorted({round(t, 3) for _, t in marks})
    present = {(row, round(t, 3)) for row, t in marks}
    values = [[index[row] if (row, t) in present else None for t in x] for row in rows]
    return {"rows": rows, "x": x, "values": values, "hidden": max(hidden, 0)}
