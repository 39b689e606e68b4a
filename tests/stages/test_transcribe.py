"""Streaming transcription on real speech: partials, finals, timing, guards, determinism."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmstream.config import RunMode, TranscribeConfig
from mmstream.events import Transcript, TranscriptEvent
from mmstream.media import AUDIO_RATE, AudioChunk, EndOfStream
from mmstream.models.whisper import collapse_repeats, normalise_word, word_error_rate
from mmstream.runtime.harness import run_stage
from mmstream.stages.transcribe import TranscribeStage
from mmstream.stages.transcripts import LocalAgreement
from tests.speech_clips import chunks, conversation, white_noise

SENTENCES = ["The garage door is open.", "Please close it before dinner tonight."]


async def transcribe(items: list[Any], mode: RunMode = "fast",
                     **config: Any) -> list[TranscriptEvent]:
    out = await run_stage(TranscribeStage(TranscribeConfig(**config), mode=mode), items)
    passed = [x for x in out if isinstance(x, AudioChunk | EndOfStream)]
    assert len(passed) == len(items), "audio and the end of stream pass on unchanged"
    return [x for x in out if isinstance(x, TranscriptEvent)]


def finals(events: list[TranscriptEvent]) -> list[Transcript]:
    return [e.payload for e in events if e.payload.final]


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, list[Any]]:
    return conversation(tmp_path_factory.mktemp("speech"), SENTENCES, gap_s=1.5)


@pytest.mark.slow
async def test_two_sentences_give_two_accurate_finals(two_sentences: Any) -> None:
    audio, truth = two_sentences
    events = await transcribe(chunks(audio))
    got = finals(events)
    assert len(got) == 2, [f.text for f in got]
    for final, spoken in zip(got, truth, strict=True):
        assert word_error_rate(spoken.text, final.text) <= 0.2, (spoken.text, final.text)
        assert abs(final.start - spoken.start) <= 0.3 and abs(final.end - spoken.end) <= 0.3
        assert final.words and final.language == "en" and 0.5 < final.confidence <= 1.0
        assert all(final.start <= w.start <= w.end <= final.end for w in final.words)
        assert final.stable_text == final.text
    assert [f.utterance_id for f in got] == [0, 1]
    for event in events:  # t_capture: when it was decided, at or after the speech it covers
        assert event.t_capture >= event.payload.end


@pytest.mark.slow
async def test_partials_precede_their_final_and_agree_with_it(two_sentences: Any) -> None:
    audio, _ = two_sentences
    events = await transcribe(chunks(audio), partial_interval_s=0.5)
    for utterance in (0, 1):
        mine = [e.payload for e in events if e.payload.utterance_id == utterance]
        assert [p.final for p in mine][-1] is True and not any(p.final for p in mine[:-1])
        partials = mine[:-1]
        assert len(partials) >= 2, "a 2 s sentence with 0.5 s partials gets several"
        stable = [p.stable_text.split() for p in partials]
        assert any(stable), "consecutive passes agreed on some words"
        for before, after in itertools.pairwise(stable):  # stable only grows
            assert after[:len(before)] == before
        final_words = [normalise_word(w) for w in mine[-1].text.split()]
        last_stable = [normalise_word(w) for w in stable[-1]]
        assert final_words[:len(last_stable)] == last_stable, (stable[-1], mine[-1].text)
        assert all(p.text.startswith(p.stable_text) for p in partials)


@pytest.mark.slow
async def test_same_audio_gives_identical_events(two_sentences: Any) -> None:
    audio, _ = two_sentences
    first = await transcribe(chunks(audio))
    second = await transcribe(chunks(audio))
    assert first == second and len(first) > 2


@pytest.mark.slow
async def test_silence_and_noise_give_no_transcript() -> None:
    quiet = np.zeros(4 * AUDIO_RATE, np.float32)
    noise = white_noise(6.0, level=0.1)
    loud = white_noise(4.0, level=0.4, seed=3)
    events = await transcribe(chunks(np.concatenate([quiet, noise, quiet, loud])))
    assert events == []


@pytest.mark.slow
async def test_live_mode_scheduler_gives_the_same_finals(two_sentences: Any) -> None:
    audio, truth = two_sentences
    got = finals(await transcribe(chunks(audio), mode="live"))
    assert [word_error_rate(s.text, f.text) <= 0.2 for s, f in zip(truth, got, strict=True)] \
        == [True, True]


@pytest.mark.slow
async def test_a_new_timeline_closes_the_open_utterance(two_sentences: Any) -> None:
    """A microphone that reopens jumps in capture time: the speech so far gets its final."""
    audio, truth = two_sentences
    cut = int((truth[0].end - 0.4) * AUDIO_RATE)  # mid-way through the last word
    items = [*chunks(audio[:cut])[:-1], *chunks(audio[cut:], t0=100.0)]
    got = finals(await transcribe(items))
    assert len(got) == 3 and got[0].end <= truth[0].end and got[1].start >= 100.0


@pytest.mark.slow
async def test_long_speech_is_cut_at_a_pause_not_mid_word(tmp_path: Path) -> None:
    text = ("The weather station on the roof reports wind from the north west at twelve "
            "kilometres per hour. The temperature is falling slowly and rain is expected in "
            "the evening. The garden sensors say the soil is dry and the tomatoes need water. "
            "The solar panels produced eleven kilowatt hours today which is more than "
            "yesterday. The battery in the garage is charged and the car is ready for the "
            "morning drive to the city. The front door camera saw a delivery van at noon and "
            "the parcel is on the porch. Nobody has opened the bedroom window since this "
            "morning.")
    audio, truth = conversation(tmp_path, [text], gap_s=1.0)
    assert truth[0].end - truth[0].start > 30, "the clip must be longer than whisper's window"
    got = finals(await transcribe(chunks(audio), partials=False))
    assert len(got) >= 2
    for final in got:
        assert final.end - final.start <= 25.0 + 0.05
    for a, b in itertools.pairwise(got):  # each cut is quiet: between words
        edge = audio[int(a.end * AUDIO_RATE) - 160:int(a.end * AUDIO_RATE) + 160]
        assert np.sqrt(np.mean(edge ** 2)) < 0.02, a.end
        assert b.start >= a.end
    assert word_error_rate(text, " ".join(f.text for f in got)) <= 0.25


def test_local_agreement_commits_what_two_passes_agree_on() -> None:
    agreement = LocalAgreement()
    assert agreement.update("the cat".split()) == ("the cat", "")
    assert agreement.update("the cat sat".split()) == ("the cat sat", "the cat")
    assert agreement.update("the cat sat on".split()) == ("the cat sat on", "the cat sat")
    # a pass that contradicts the stable words cannot take them back
    assert agreement.update("a cat sat on the".split()) == ("the cat sat on the",
                                                            "the cat sat")


def test_repeated_phrases_are_collapsed_but_normal_repeats_stay() -> None:
    words = "thank you. thank you. thank you. thank you. Bye".split()
    assert [words[i] for i in collapse_repeats(words, 3)] == ["thank", "you.", "Bye"]
    words = "no, no, no.".split()
    assert collapse_repeats(words, 3) == [0, 1, 2]


def test_bad_transcribe_settings_name_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_utterance_s"):
        TranscribeConfig(max_utterance_s=45)


@pytest.mark.slow
def test_batched_decoding_across_streams_matches_one_at_a_time(tmp_path: Path) -> None:
    """The CUDA path (BatchedInferencePipeline over several streams' utterances), run on CPU."""
    from mmstream.models.whisper import DecodeOptions, DecodeRequest, WhisperDecoder, load_whisper

    model = load_whisper()
    requests = []
    for index, (text, offset) in enumerate(zip(SENTENCES, (10.0, 50.0), strict=True)):
        audio, _ = conversation(tmp_path / str(index), [text], gap_s=0.3, lead_s=0.2)
        requests.append(DecodeRequest(audio, offset, final=True))
    alone = WhisperDecoder(model, DecodeOptions(beam_size=5), "cpu").decode(requests)
    batched = WhisperDecoder(model, DecodeOptions(beam_size=5), "cuda").decode(requests)
    assert [r.text for r in batched] == [r.text for r in alone]
    for one, many, request in zip(alone, batched, requests, strict=True):
        assert many.words[0].start >= request.offset  # on its own stream's clock
        assert abs(many.words[-1].end - one.words[-1].end) < 0.1


def test_a_repetition_loop_after_the_speech_is_dropped() -> None:
    """What whisper tiny.en produced on one machine after "... a moment ago." (bench_asr):
    a confident, made-up loop stamped at the end of the audio. Its compression ratio gives it
    away; the real segment before it stays."""
    from faster_whisper.transcribe import Segment, Word

    from mmstream.models.whisper import DecodeOptions, DecodeRequest, WhisperDecoder

    def segment(start: float, end: float, text: str, ratio: float, no_speech: float,
                ) -> Segment:
        words = [Word(start, end, f" {w}", 0.9) for w in text.split()]
        return Segment(0, 0, start, end, f" {text}", [], -0.2, ratio, no_speech, words, 0.0)

    speech = segment(0.0, 3.3, "The washing machine finished its cycle a moment ago.", 0.9,
                     0.01)
    loop = segment(3.3, 3.6, "Thank you so much for watching and I'll see you in the next "
                   + "video, see you in the next video, " * 12, 10.94, 0.71)
    decoder = WhisperDecoder(None, DecodeOptions())  # type: ignore[arg-type]
    request = DecodeRequest(np.zeros(58_000, dtype=np.float32), offset=5.0)
    result = decoder._result([speech, loop], request, "en")
    assert result.text == "The washing machine finished its cycle a moment ago."
    assert result.dropped_segments == 1 and all(w.end <= 8.3 for w in result.words)
