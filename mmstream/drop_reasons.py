"""What each drop counter means, in words: the one mapping of drop reason codes to plain text.

A drop counter is named `<where>:<reason>[:<detail>]` (PipelineView.drops(), the MQTT health
payload's `drops`, `mmstream_drops_total`): `where` is the stage, channel (`a->b`) or sink that
dropped, `reason` one of the codes below, `detail` the stream, item type or priority. The codes
stay as they are for machines (metrics, Home Assistant templates); people read `explain()`,
which the live view's health panel shows and docs/deploy.md lists.
"""

from __future__ import annotations

from dataclasses import dataclass

# reason code -> what was dropped and why. Longer codes first where one starts another.
REASONS: dict[str, str] = {
    "text_not_waited_for": "windows analysed before their speech was transcribed "
                           "(speech recognition was behind)",
    "carried": "windows whose picture had not changed: the last analysed frame's scene and "
               "face results were reused (nothing lost, less work)",
    "shed:stale_window": "windows skipped: too old to be worth analysing by their turn "
                         "(the box is behind)",
    "shed": "frames skipped to keep up (overload: fewer frames analysed)",
    "overflow": "items dropped: the queue to the next stage was full",
    "partial_skipped_busy": "partial transcripts skipped: the speech decoder was busy",
    "partial_skipped_slow": "partial transcripts skipped: decoding was slower than speech",
    "paused": "media dropped while analysis was paused (control command)",
    "rate": "frames skipped for the frame rate set by a control command",
    "spool_full": "events dropped: the MQTT spool was full (lowest priority first)",
    "spool_expired": "events dropped: older than the MQTT spool keeps them",
    "disk_full": "events dropped: the spool's disk was full and the events held in memory "
                 "reached their bound",
    "words_invented": "words of finals dropped: whisper wrote them, nobody said them "
                      "(a doubted tail, an echo, words after the voice stopped)",
    "qos0_offline": "QoS 0 messages dropped while the broker was unreachable",
    "input_overflow": "audio lost: the microphone's buffer overflowed",
    "ring_overflow_frames": "audio frames dropped: the reader fell behind the microphone",
}


@dataclass(frozen=True, slots=True)
class DropReason:
    key: str  # the counter's name, as machines see it
    where: str
    reason: str  # the code ("" when unknown)
    detail: str  # stream, item type or priority
    text: str  # for people

    @property
    def line(self) -> str:
        """`text (detail)`, e.g. "windows analysed before … (sample)"."""
        return f"{self.text} ({self.detail})" if self.detail else self.text


def explain(key: str) -> DropReason:
    """The counter `key` in words; an unknown code is shown as it is."""
    where, _, rest = key.partition(":")
    if not rest:  # a bare code, as a source reports its own (`input_overflow`)
        where, rest = "", key
    for code, text in REASONS.items():
        if rest == code or rest.startswith(code + ":"):
            return DropReason(key, where, code, rest[len(code) + 1:], text)
    return DropReason(key, where, "", "", rest)
