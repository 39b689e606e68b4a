"""Speech benchmark on real voices: live transcription against the same model offline, words
invented in silence and noise, and how long a final takes; every variant side by side in one
run (a shared 2-core box is noisy: compare within a run).

    python benchmarks/bench_asr_real.py                  # streaming + offline, ~10 min
    python benchmarks/bench_asr_real.py --live           # + a real `mmstream run` per variant
    python benchmarks/bench_asr_real.py --variants before,after --quick

The sets (benchmarks/real_speech.py) come from recordings of a real voice with transcripts
(../shared/speech-dev, or MMSTREAM_SPEECH_DEV): `clean` (each recording, then 4 s of silence),
`talks` (3 recordings joined by natural 0.3-0.9 s gaps: pauses inside what is said), `noisy`
(the talks with room reverb and pink noise at 10 dB SNR), `talks_one_stream` (the talks on one
stream, as a microphone hears them: each decode prompted with the finals before it) and
`nonspeech` (an hour of silence,
room noise, loud noise, mains hum, music-like tones and knocks; --quick: 6 minutes).

- offline: plain faster-whisper (tiny.en int8, beam 5, its own defaults), each clip whole:
  `wer_offline`, the target (`ratio` = streaming WER / offline WER, goal <= 1.2);
- streaming, per variant: the TranscribeStage over each clip as fast as possible (the same
  transcripts a live run gives, docs/replay.md): `wer`, `invented_finals` (finals with no
  word that was said; every final of the non-speech set counts), `words_dropped` (by the
  invented-word guards) and `decided_s` (media seconds from the end of the voice to the
  moment the final was decided, p50/p95);
- live (--live), per variant: the talks spoken in real time into a virtual ALSA microphone
  read by a real `mmstream run`, a paho subscriber timing each arrival: `final_s` (last final
  - the moment the last voiced sample was handed to the microphone), `first_text_s`, WER.
Writes benchmarks/results/asr_real[_quick].json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_speech as rs
from bench_asr import REPO, LiveRun, Subscriber, handed_at, spread
from speech_clips import chunks

from mmstream.config import FAST, TranscribeConfig
from mmstream.demo_broker import MosquittoBroker
from mmstream.events import TranscriptEvent
from mmstream.models.whisper import load_whisper
from mmstream.runtime.harness import StageHarness
from mmstream.stages.transcribe import TranscribeStage

BEFORE: dict[str, Any] = {"sentence_end_ms": 200, "min_silence_ms": 500,
                          "drop_invented_words": False, "prompt_previous": True}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": BEFORE,  # the stage as it was before issue 33
    "guards": {**BEFORE, "drop_invented_words": True},  # + the invented-word guards
    "pauses": {"sentence_end_ms": 700, "min_silence_ms": 1000, "drop_invented_words": False,
               "prompt_previous": True},
    "pause500": {"sentence_end_ms": 500, "min_silence_ms": 800},
    "after": {},  # the defaults: guards, a sentence ends at 700 ms, any speech at 1000 ms,
    # no earlier finals as whisper's prompt
    "prompt": {"prompt_previous": True},  # `after` with the earlier finals as whisper's prompt
    # issue 32: a finished sentence ends at a short pause, a less sure one at a longer one
    "s300": {"sentence_end_ms": 300},
    "s300l500": {"sentence_end_ms": 300, "loose_sentence_end_ms": 500},
    "s300l700": {"sentence_end_ms": 300, "loose_sentence_end_ms": 700},
    "pad150": {"speech_pad_ms": 150},  # the defaults, the final's decode ~64 ms sooner
}


def invented(final_text: str, reference: str) -> bool:
    """A final made only of words that were not said."""
    words = set(rs.normalise_text(final_text).split())
    return bool(words) and not words & set(rs.normalise_text(reference).split())


def offline_wer(clips: list[rs.Clip]) -> float:
    model = load_whisper("bundled", "cpu", "int8", 2)
    pairs = []
    for clip in clips:
        segments, _ = model.transcribe(clip.audio, beam_size=5, language="en")
        pairs.append((clip.text, " ".join(s.text.strip() for s in segments)))
    return round(rs.corpus_wer(pairs), 4)


async def streaming(clips: list[rs.Clip], settings: dict[str, Any]) -> dict[str, Any]:
    stage = TranscribeStage(TranscribeConfig(**settings), policy=FAST)
    pairs, made_up, decided, finals_count = [], [], [], 0
    async with StageHarness(stage) as harness:
        for index, clip in enumerate(clips):
            out = []
            for item in chunks(clip.audio, stream_id=f"clip{index}"):
                out += await harness.feed(item)
            finals = [e for e in out if isinstance(e, TranscriptEvent) and e.payload.final]
            pairs.append((clip.text, " ".join(e.payload.text for e in finals)))
            finals_count += len(finals)
            made_up += [f"{clip.name}: {e.payload.text}" for e in finals
                        if invented(e.payload.text, clip.text)]
            if clip.text and finals and clip.speech_end_s:
                decided.append(finals[-1].t_capture - clip.speech_end_s)
    return {"wer": round(rs.corpus_wer(pairs), 4) if any(c.text for c in clips) else None,
            "invented_finals": len(made_up), "invented": made_up[:10],
            "words_dropped": stage.drops().get("words_invented", 0), "finals": finals_count,
            "decided_s": spread(decided)}


def live(tmp: Path, broker: MosquittoBroker, settings: dict[str, Any],
         clips: list[rs.Clip]) -> dict[str, Any]:
    subscriber = Subscriber(broker.port)
    run = LiveRun(tmp, broker, settings)
    try:
        run.wait_online()
        for clip in clips:
            run.mic.play(clip.audio)
        run.mic.wait_played(sum(len(c.audio) for c in clips) / rs.AUDIO_RATE + 30)
        time.sleep(2.0)  # the last final
    finally:
        run.stop()
        subscriber.close()
    starts, rows = run.mic.clip_started, []
    for index, clip in enumerate(clips):
        begin = starts[index]
        end = starts[index + 1] if index + 1 < len(starts) else float("inf")
        mine = [(at, e) for at, e in subscriber.events if begin <= at < end]
        finals = [(at, e) for at, e in mine if e.payload.final]
        row: dict[str, Any] = {"text": clip.text,
                               "heard": " ".join(e.payload.text for _, e in finals)}
        if finals:
            row["final_s"] = round(finals[-1][0] - handed_at(
                begin, clip.speech_end_s, run.mic.period), 3)
            row["first_text_s"] = round(mine[0][0] - handed_at(begin, 0.5, run.mic.period), 3)
        rows.append(row)
    timed = [r for r in rows if "final_s" in r]
    return {"final_s": spread([r["final_s"] for r in timed]),
            "first_text_s": spread([r["first_text_s"] for r in timed]),
            "wer_live": round(rs.corpus_wer([(r["text"], r["heard"]) for r in rows]), 4),
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="before,guards,pauses,after",
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--quick", action="store_true", help="20 clean clips, 6 talks, 6 min "
                        "of non-speech")
    parser.add_argument("--live", action="store_true", help="also a real `mmstream run` on a "
                        "virtual microphone per variant (the talks, ~3 min each)")
    parser.add_argument("--sets", default="clean,talks,talks_one_stream,noisy,nonspeech",
                        help="comma-separated sets to measure (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.variants.split(",")
    talks = rs.talk_set(6 if args.quick else 12)
    # the talks one after another on one stream, as a live microphone hears them: each
    # decode is prompted with the finals before it, so an invented word can propagate
    one_stream = rs.Clip("talks_one_stream", np.concatenate([t.audio for t in talks]),
                         " ".join(t.text for t in talks), 0.0)
    sets = {"clean": rs.clean_set(20 if args.quick else None), "talks": talks,
            "talks_one_stream": [one_stream], "noisy": rs.noisy(talks),
            "nonspeech": rs.nonspeech_set(60 if args.quick else 600)}
    sets = {name: clips for name, clips in sets.items() if name in args.sets.split(",")}
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU used, shared",
        "model": "bundled tiny.en int8; offline: faster-whisper beam 5, 2 threads",
        "speech": str(rs.SPEECH_DEV),
        "audio_s": {name: round(sum(len(c.audio) for c in clips) / rs.AUDIO_RATE, 1)
                    for name, clips in sets.items()},
        "wer_offline": {name: offline_wer(clips) for name, clips in sets.items()
                        if name != "nonspeech"},
        "variants": {name: {"settings": VARIANTS[name]} for name in names},
    }
    for name in names:
        for set_name, clips in sets.items():
            measured = asyncio.run(streaming(clips, VARIANTS[name]))
            offline = result["wer_offline"].get(set_name)
            if offline and measured["wer"] is not None:
                measured["ratio"] = round(measured["wer"] / offline, 2)
            result["variants"][name][set_name] = measured
            print(name, set_name, json.dumps({k: v for k, v in measured.items()
                                              if k != "invented"}), flush=True)
    if args.live:
        broker = MosquittoBroker()
        broker.start()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for name in names:
                    result["variants"][name]["live"] = live(
                        Path(tmp) / name, broker, VARIANTS[name], talks)
                    print(name, "live", json.dumps({k: v for k, v in result["variants"][name][
                        "live"].items() if k != "rows"}), flush=True)
        finally:
            broker.stop()
    out = args.out or REPO / "benchmarks" / "results" / (
        f"asr_real{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
