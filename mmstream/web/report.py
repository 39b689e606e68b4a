"""Replay reports: one self-contained HTML file per input, and an index page for a batch.

    loaded = load_events(Path("rec.mcap"))
    write_report(loaded.events, recording_frames(Path("rec.mcap")), Path("report.html"))

`report_from_input` does both for the CLI (`mmstream report`, `mmstream replay --report`).
A batch writes one report per input and `write_index` links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmstream.config.sources import stream_id_for
from mmstream.errors import SinkError, SourceError
from mmstream.events import Event
from mmstream.paths import PartialFile, missing_reason
from mmstream.web.assets import render
from mmstream.web.frames import FrameRef, media_frames, recording_frames
from mmstream.web.loaders import is_recording, load_events
from mmstream.web.summary import ReportSummary, summarize, time_span
from mmstream.web.thumbnails import MAX_THUMBNAILS, pick_thumbnails, window_times
from mmstream.web.timeline import chart_data, transcript_lines


@dataclass(frozen=True)
class IndexEntry:
    """One input of a batch: its report (a path relative to the index), or why there is none."""

    name: str
    href: str = ""
    summary: ReportSummary | None = None
    error: str = ""


def write_report(events: Sequence[Event], frames: Iterable[FrameRef], out: Path, *,
                 title: str = "", source: str = "", damage: str = "",
                 max_thumbnails: int = MAX_THUMBNAILS) -> ReportSummary:
    """Render `events` (and thumbnails picked from `frames`) into one HTML file at `out`."""
    picked = pick_thumbnails(frames, window_times(events), max_thumbnails)
    span = time_span(events, (picked.first_t, picked.last_t))
    summary = summarize(events, span, title=title or out.stem, source=source,
                        thumbnails=len(picked.thumbnails), damage=damage)
    page = render("report.html.j2", summary=summary, charts=chart_data(events, span),
                  transcripts=transcript_lines(events, span),
                  thumbnails=[(thumb, span.relative(thumb.t)) for thumb in picked.thumbnails])
    _write_text(out, page)
    return summary


def write_index(entries: Sequence[IndexEntry], out: Path, *,
                title: str = "mmstream reports") -> None:
    """A page listing a batch's reports (links relative to `out`) and the inputs that failed."""
    _write_text(out, render("index.html.j2", title=title, entries=entries))


def report_from_input(source: Path, out: Path, *, media: Path | None = None, title: str = "",
                      max_thumbnails: int = MAX_THUMBNAILS) -> ReportSummary:
    """The report of a recording (thumbnails from its frames), or of an events file
    (thumbnails from `media`: the media file or recording it came from, if given)."""
    loaded = load_events(source)
    if media is not None:
        frames = frames_of(media)
    elif loaded.is_recording:
        frames = recording_frames(source)
    else:
        frames = iter(())
    described = str(source) if media is None else f"{source} (frames from {media})"
    return write_report(loaded.events, frames, out, title=title or source.name,
                        source=described, damage=loaded.damage, max_thumbnails=max_thumbnails)


def frames_of(media: Path) -> Iterator[FrameRef]:
    """The frames of a recording or a media file, stamped as a replay of it stamps them."""
    if (missing := missing_reason(media)) is not None:
        raise SourceError(f"{media}: {missing}")
    if not media.is_file():
        raise SourceError(f"{media}: not a file")
    if is_recording(media):
        return recording_frames(media)
    return media_frames(media, stream_id_for(media))


def _write_text(out: Path, text: str) -> None:
    """Written beside, then renamed: a reader never sees half a page."""
    written = PartialFile(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        written.path.write_text(text, encoding="utf-8")
        written.complete()
    except OSError as exc:
        written.discard()
        raise SinkError(f"cannot write the report {out}: {exc.strerror}") from None
