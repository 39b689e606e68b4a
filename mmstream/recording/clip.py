"""A moment of a recording as a standard mp4 (H.264 + AAC) any player opens: `mmstream clip`.

Compact recordings are remuxed, never re-encoded: the clip starts at the last keyframe at or
before `--from` (the recorder writes one at least every 2 s and at the start of every file, so
a clip starts at most 2 s early), and the recorded AAC packets are copied with their sample
times. Recordings of today's exact formats (JPEG/PNG frames, PCM audio) are encoded once here,
with the recorder's own encoders. The transcripts said in the clip go to an .srt beside it.

A damaged segment in the middle is read up to its damage, then the clip goes on with the next
segment, and the result says where the gap is. Nothing to show gives a `ClipError` and no file.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import msgspec

from mmstream.errors import SourceError
from mmstream.events import TranscriptEvent, decode
from mmstream.media import AUDIO_RATE, AudioChunk, VideoFrame
from mmstream.recording import format as fmt
from mmstream.recording.codecs import KEYFRAME_EVERY_S, AudioEncoder, AudioMessage, H264Encoder
from mmstream.recording.reader import RecordedMessage, RecordingReader
from mmstream.recording.segments import Segment, covering, list_segments, read_segment

AAC_FRAME = 1024  # samples per AAC-LC packet
LOOK_BACK_S = KEYFRAME_EVERY_S + 0.5  # read this far before --from to find its keyframe
# a transcript is logged when whisper decided it, seconds after its words: read this far on
TRANSCRIPT_LAG_S = 30.0
VIDEO_TIME_BASE = Fraction(1, 1000)
AUDIO_TIME_BASE = Fraction(1, AUDIO_RATE)


class ClipError(SourceError):
    """No clip can be cut (nothing recorded then, a stream not recorded): no file is left."""


@dataclass
class _Frame:
    t: float
    data: bytes  # one H.264 access unit
    keyframe: bool


@dataclass
class _Packet:
    t: float
    data: bytes  # one raw AAC-LC packet


@dataclass
class ClipResult:
    out: Path
    subtitles: Path | None
    start_s: float  # log time of the clip's first moment (the keyframe at or before --from)
    end_s: float
    frames: int
    packets: int
    re_encoded: bool
    early_s: float  # how much before --from it starts (back to a keyframe)
    notes: list[str] = field(default_factory=list)  # damaged segments skipped, and the like


@dataclass
class _Gathered:
    frames: list[_Frame] = field(default_factory=list)
    packets: list[_Packet] = field(default_factory=list)
    audio_config: bytes = b""
    lines: list[tuple[float, float, str]] = field(default_factory=list)  # transcripts
    streams: set[str] = field(default_factory=set)
    re_encoded: bool = False
    notes: list[str] = field(default_factory=list)
    _video: H264Encoder | None = None
    _audio: AudioEncoder | None = None


def cut_clip(segments: list[Path], stream: str, t0: float, t1: float, out: Path) -> ClipResult:
    """Cut [t0, t1) (log-time seconds) of `stream` out of `segments` (in time order)."""
    if t1 <= t0:
        raise ClipError(f"the clip ends ({t1:.3f}) before it starts ({t0:.3f})")
    found = _Gathered()
    for number, path in enumerate(segments):
        _read_segment(path, stream, t0, t1, found, last=number == len(segments) - 1)
    _flush_encoders(found)
    frames = _from_keyframe(found.frames, t0, t1)
    start = frames[0].t if frames else t0
    packets = [p for p in found.packets if start <= p.t < t1]
    if not frames and not packets:
        raise ClipError(f"nothing of stream '{stream}' was recorded between "
                        f"{_when(t0)} and {_when(t1)}")
    end = max([f.t for f in frames[-1:]] + [p.t + AAC_FRAME / AUDIO_RATE for p in packets[-1:]])
    _write_mp4(out, frames, packets, found.audio_config, start)
    subtitles = _write_srt(out.with_suffix(".srt"), found.lines, start, t1)
    return ClipResult(out, subtitles, start, end, len(frames), len(packets), found.re_encoded,
                      max(0.0, t0 - start), found.notes)


def clip_from_folder(folder: Path, stream: str | None, t0: float, t1: float,
                     out: Path) -> ClipResult:
    """A clip of the daemon's segments in `folder` (t0, t1: epoch seconds)."""
    unreadable: list[Path] = []
    segments = list_segments(folder, unreadable)
    stream = pick_stream(segments, stream, str(folder))
    found = covering(segments, stream, fmt.to_ns(t0 - LOOK_BACK_S), fmt.to_ns(t1))
    if found:  # and the segments after, for the transcripts logged late
        found = covering(segments, stream, fmt.to_ns(t0 - LOOK_BACK_S),
                         fmt.to_ns(t1 + TRANSCRIPT_LAG_S))
    if not found:
        spans = [s for s in segments if stream in s.streams]
        held = (f"its recordings there cover {_when(spans[0].start_ns / 1e9)} to "
                f"{_when(spans[-1].end_ns / 1e9)}" if spans else "it has none there")
        raise ClipError(f"no recording of stream '{stream}' between {_when(t0)} and "
                        f"{_when(t1)} in {folder} ({held})")
    # segments are named by their start: an unreadable one between them is a gap in the clip
    first, last = found[0].path.name, found[-1].path.name
    skipped = [f"{p.name} is damaged (no complete chunk): the clip skips it "
               "and goes on with the next"
               for p in unreadable if first < p.name < last]
    result = cut_clip([s.path for s in found], stream, t0, t1, out)
    result.notes[:0] = skipped
    return result


def clip_from_file(path: Path, stream: str | None, from_s: float, to_s: float,
                   out: Path) -> ClipResult:
    """A clip of one recording, `from_s`/`to_s` seconds into it."""
    if not path.is_file():
        raise ClipError(f"{path}: no such recording")
    segment = read_segment(path)
    stream = pick_stream([segment] if segment else [], stream, str(path))
    first = _first_input_s(path, stream)
    return cut_clip([path], stream, first + from_s, first + to_s, out)


def _first_input_s(path: Path, stream: str) -> float:
    """Where "seconds into a recording" count from: its first input (events logged at their
    capture time may be older: a window's event written after the file started)."""
    with RecordingReader(path) as reader:
        for message in reader.messages(kinds={"video", "audio"}, streams={stream}):
            return message.log_time / 1e9
    raise ClipError(f"{path}: no video or audio of stream '{stream}' recorded")


def pick_stream(segments: list[Segment], stream: str | None, where: str) -> str:
    """The stream asked for, or the only one recorded; a clear line otherwise."""
    streams = sorted(set().union(*(s.streams for s in segments))) if segments else []
    if not streams:
        raise ClipError(f"{where}: no recordings")
    if stream is None:
        if len(streams) > 1:
            raise ClipError(f"{where} holds streams {', '.join(streams)}: choose one with "
                            "--stream")
        return streams[0]
    if stream not in streams:
        raise ClipError(f"stream '{stream}' is not recorded in {where} (recorded: "
                        f"{', '.join(streams)})")
    return stream


def _read_segment(path: Path, stream: str, t0: float, t1: float, found: _Gathered,
                  last: bool) -> None:
    start_ns, end_ns = fmt.to_ns(t0 - LOOK_BACK_S), fmt.to_ns(t1 + TRANSCRIPT_LAG_S)
    media_end_ns = fmt.to_ns(t1)
    try:
        reader = RecordingReader(path)
    except SourceError as exc:
        found.notes.append(f"{path.name}: skipped ({exc})")
        return
    with reader:
        for message in reader.messages(streams={stream}, start_ns=start_ns, end_ns=end_ns):
            if message.topic.kind == "event" or message.log_time < media_end_ns:
                _take(message, found)
        stop = reader.stop
        if stop is not None and not reader.complete and not (
                last and stop.reason.startswith("the file ends before its summary")):
            found.notes.append(f"{path.name} is damaged ({stop.reason}): the clip skips the "
                               "rest of it" + ("" if last else " and goes on with the next"))


def _take(message: RecordedMessage, found: _Gathered) -> None:
    topic = message.topic
    found.streams.add(topic.stream_id)
    try:
        if topic.kind == "video" and topic.codec == "h264":
            video = fmt.video_decoder.decode(message.data)
            found.frames.append(_Frame(video.t_capture, video.data, video.keyframe))
        elif topic.kind == "video":
            t, index, image = fmt.decode_frame(message.data, topic.stream_id)
            _encode_frame(VideoFrame(topic.stream_id, t, image, index), found)
        elif topic.codec == "aac":
            audio = fmt.aac_decoder.decode(message.data)
            found.audio_config = found.audio_config or audio.config
            for k, packet in enumerate(audio.packets):
                t = audio.t_capture + (audio.pts + k * AAC_FRAME - audio.start) / AUDIO_RATE
                found.packets.append(_Packet(t, packet))
        elif topic.kind == "audio":
            t, samples = fmt.decode_audio(message.data, topic.stream_id)
            _encode_audio(AudioChunk(topic.stream_id, t, samples), found)
        elif topic.event_type == "transcript":
            event = decode(message.data)
            if isinstance(event, TranscriptEvent) and event.payload.final and (
                    text := event.payload.text.strip()):
                found.lines.append((event.payload.start, event.payload.end, text))
    except (msgspec.DecodeError, ValueError) as exc:
        found.notes.append(f"a {topic.name} message at t={message.log_time / 1e9:.3f} is "
                           f"unreadable ({exc}): left out")


def _encode_frame(frame: VideoFrame, found: _Gathered) -> None:
    """Today's image formats: encoded once, with the recorder's H.264 settings."""
    found.re_encoded = True
    encoder = found._video = found._video or H264Encoder(crf=23)
    data, keyframe = encoder.encode(frame)
    found.frames.append(_Frame(frame.t_capture, data, keyframe))


def _encode_audio(chunk: AudioChunk, found: _Gathered) -> None:
    found.re_encoded = True
    encoder = found._audio = found._audio or AudioEncoder(64_000)
    _take_audio(encoder, encoder.encode(chunk), found)


def _flush_encoders(found: _Gathered) -> None:
    if found._audio is not None:
        _take_audio(found._audio, found._audio.flush(), found)


def _take_audio(encoder: AudioEncoder, messages: list[AudioMessage], found: _Gathered) -> None:
    found.audio_config = found.audio_config or encoder.config
    for message in messages:
        t_first = message.chunk.t_capture + (message.pts - message.start) / AUDIO_RATE
        for k, packet in enumerate(message.packets):
            found.packets.append(_Packet(t_first + k * AAC_FRAME / AUDIO_RATE, packet))


def _from_keyframe(frames: list[_Frame], t0: float, t1: float) -> list[_Frame]:
    """The frames from the last keyframe at or before t0 (else the first after it) to t1."""
    frames = sorted(frames, key=lambda f: f.t)
    keys = [n for n, f in enumerate(frames) if f.keyframe and f.t < t1]
    before = [n for n in keys if frames[n].t <= t0]
    after = [n for n in keys if frames[n].t > t0]
    first = before[-1] if before else (after[0] if after else None)
    if first is None:
        return []
    return [f for f in frames[first:] if f.t < t1]


def _write_mp4(out: Path, frames: list[_Frame], packets: list[_Packet], audio_config: bytes,
               start: float) -> None:
    """Remux into mp4 (written beside `out`, renamed when whole: no half file on failure)."""
    partial = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(partial), "w", format="mp4") as container:
            video = audio = None
            if frames:
                # the stream's parameters (SPS/PPS) from its first keyframe, as parsed by FFmpeg
                with av.open(io.BytesIO(frames[0].data), format="h264") as first:
                    video = container.add_stream_from_template(first.streams.video[0])
                video.time_base = VIDEO_TIME_BASE
            if packets:
                audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
                audio.time_base = AUDIO_TIME_BASE
                audio.codec_context.extradata = audio_config
            timed = sorted([(f.t, 0, f) for f in frames] + [(p.t, 1, p) for p in packets],
                           key=lambda x: (x[0], x[1]))
            last_pts = {0: -1, 1: -1}
            for t, kind, item in timed:
                packet = av.Packet(item.data)
                base = VIDEO_TIME_BASE if kind == 0 else AUDIO_TIME_BASE
                pts = max(last_pts[kind] + 1, round((t - start) / base))  # strictly rising
                last_pts[kind] = pts
                packet.stream, packet.time_base = (video if kind == 0 else audio), base
                packet.pts = packet.dts = pts
                if isinstance(item, _Frame):
                    packet.is_keyframe = item.keyframe
                container.mux(packet)
        partial.replace(out)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _write_srt(path: Path, lines: list[tuple[float, float, str]], start: float,
               end: float) -> Path | None:
    shown = sorted((max(a, start), min(b, end), text) for a, b, text in lines
                   if b > start and a < end)
    if not shown:
        with contextlib.suppress(OSError):
            path.unlink()  # an older clip's subtitles would be wrong for this one
        return None
    blocks = [f"{n}\n{_srt_time(a - start)} --> {_srt_time(max(b, a + 0.5) - start)}\n{text}\n"
              for n, (a, b, text) in enumerate(shown, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _srt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _when(t: float) -> str:
    if t < 1e9:  # media time: seconds into a recording
        return f"{t:.3f} s"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
