"""`mmstream listen URL`: watch what mmstream publishes, checked against the event contract.

Every message is validated with the schema (mmstream.events.decode) and against its topic;
`seq` is followed per (device, stream): a jump is reported as a gap (lost events), a repeat
as a duplicate (a redelivery after a reconnect: dedupe by (stream_id, seq)), a fall back to 1
as a publisher restart. Output is a live table on a terminal, one line per event otherwise,
or the raw JSON envelopes with --jsonl (reports go to stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import typer

from mmstream.cli.app import app, user_errors
from mmstream.events import EVENT_TYPES, Event, decode, event_type

if TYPE_CHECKING:
    from mmstream.sinks.mqtt import BrokerSettings

TABLE_ROWS = 20
TYPES_HELP = f"Only these event types (repeatable): {', '.join(EVENT_TYPES)}."


@dataclass
class Verdict:
    event: Event | None
    problem: str = ""  # why the message is invalid
    note: str = ""  # a gap, duplicate or restart, for stderr


@dataclass
class ListenReport:
    """What a subscriber saw: events by type and every kind of trouble in `seq`."""

    events: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    restarts: int = 0
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(self.events.values())
        return (f"{total} events from {len(self.last_seq)} streams; {self.gaps} gaps "
                f"({self.missing} missing), {self.duplicates} duplicates, "
                f"{self.restarts} publisher restarts, {self.invalid} invalid")

    def check(self, topic: str, payload: bytes) -> Verdict:
        """Validate one event message and follow its stream's seq."""
        try:
            event = decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self.invalid += 1
            return Verdict(None, f"not a valid event: {exc}")
        parts = topic.split("/")
        said = [event.device_id, event.stream_id, event_type(event)]
        if len(parts) >= 4 and parts[-3:] != said:
            self.invalid += 1
            return Verdict(event, f"topic says {'/'.join(parts[-3:])}, event says {'/'.join(said)}")
        self.events[said[2]] += 1
        return Verdict(event, note=self._follow(event))

    def _follow(self, event: Event) -> str:
        key = (event.device_id, event.stream_id)
        last = self.last_seq.get(key)
        where = f"{event.device_id}/{event.stream_id}"
        if last is None or event.seq == last + 1:
            self.last_seq[key] = event.seq
            return ""
        if event.seq == 1:
            self.restarts += 1
            self.last_seq[key] = 1
            return f"restart: {where} seq {last} -> 1 (publisher restarted without a spool?)"
        if event.seq <= last:
            self.duplicates += 1
            return f"duplicate: {where} seq {event.seq} (after {last})"
        self.gaps += 1
        self.missing += event.seq - last - 1
        self.last_seq[key] = event.seq
        return f"gap: {where} seq {last} -> {event.seq} ({event.seq - last - 1} missing)"


def subscriptions(prefix: str, device: str, types: list[str]) -> list[str]:
    topics = [f"{prefix}/{device}/+/{kind}" for kind in types] or [f"{prefix}/{device}/+/+"]
    return [*topics, f"{prefix}/{device}/status", f"{prefix}/{device}/health"]


class Display:
    """A live table of the latest events on a terminal; plain lines or JSONL otherwise."""

    def __init__(self, jsonl: bool) -> None:
        from rich.console import Console

        self.jsonl = jsonl
        self.console = Console(stderr=False)
        self.rows: deque[tuple[str, ...]] = deque(maxlen=TABLE_ROWS)
        self.live = None
        if not jsonl and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, auto_refresh=False)
            self.live.start()

    def event(self, event: Event, payload: bytes) -> None:
        if self.jsonl:
            sys.stdout.buffer.write(payload.strip() + b"\n")
            sys.stdout.buffer.flush()
            return
        from mmstream.display import describe

        if self.live is None:
            typer.echo(describe(event))
            return
        kind = event_type(event)
        text = describe(event).split(f"#{event.seq}", 1)[-1].strip().removeprefix(kind).strip()
        self.rows.append((time.strftime("%H:%M:%S"), f"{event.device_id}/{event.stream_id}",
                          kind, str(event.seq), text))
        self.live.update(self._table(), refresh=True)

    def note(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)  # above the table
        else:
            typer.echo(text, err=True)

    def _table(self) -> object:
        from rich.table import Table

        table = Table(expand=True)
        for column in ("time", "device/stream", "type", "seq", "event"):
            table.add_column(column, overflow="fold" if column == "event" else "ellipsis")
        for row in self.rows:
            table.add_row(*row)
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def broker_from_options(url: str, password_file: Path | None, ca_file: Path | None,
                        insecure: bool) -> BrokerSettings:
    """The sink's rules (broker.py) applied to listen's options; a CA file also turns TLS on."""
    from mmstream.config import MqttSinkConfig
    from mmstream.sinks.mqtt import broker_settings

    options = MqttSinkConfig(url=url, password_file=password_file, tls={
        "enabled": True if ca_file else None, "ca_file": ca_file, "insecure": insecure})
    return broker_settings(options, setting_names={"password_file": "--password-file",
                                                   "tls.ca_file": "--ca-file"})


async def _listen(broker: BrokerSettings, topics: list[str], report: ListenReport,
                  display: Display, count: int | None) -> None:
    from mmstream.sinks.mqtt.client import LinkSettings
    from mmstream.sinks.mqtt.one_shot import Subscription

    async with Subscription(LinkSettings(broker, connect_timeout_s=10.0), topics) as messages:
        display.note(f"subscribed on {broker.label}: {', '.join(topics)}")
        async for topic, payload in messages:
            _handle(topic, payload, report, display)
            if count is not None and sum(report.events.values()) >= count:
                return


def _handle(topic: str, payload: bytes, report: ListenReport, display: Display) -> None:
    if topic.endswith("/status") and topic.count("/") == 2:
        display.note(f"{topic.split('/')[1]} is {payload.decode(errors='replace') or 'cleared'}")
        return
    if topic.endswith("/health") and topic.count("/") == 2:
        try:
            decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            report.invalid += 1
            display.note(f"invalid: {topic}: not a valid health event: {exc}")
        return
    verdict = report.check(topic, payload)
    if verdict.problem:
        display.note(f"invalid: {topic}: {verdict.problem}")
        return
    if verdict.note:
        display.note(verdict.note)
    assert verdict.event is not None
    display.event(verdict.event, payload)


@app.command()
def listen(
    url: str = typer.Argument(..., help="Broker: mqtt://[user[:password]@]host:port or mqtts://."),
    device: str = typer.Option("+", "--device", "-d", help="Only this device (default: all)."),
    types: list[str] = typer.Option([], "--type", "-t",
                                    help=TYPES_HELP),
    prefix: str = typer.Option("mmstream", "--prefix", help="Topic prefix of the publisher."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print each event as one JSON line."),
    count: int | None = typer.Option(None, "--count", "-n", help="Stop after this many events."),
    seconds: float | None = typer.Option(None, "--seconds", help="Stop after this long."),
    password_file: Path | None = typer.Option(None, "--password-file",
                                              help="Read the password from this file."),
    ca_file: Path | None = typer.Option(None, "--ca-file", help="CA bundle for mqtts://."),
    insecure: bool = typer.Option(False, "--insecure", help="TLS without the hostname check."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on any gap or invalid message."),
) -> None:
    """Subscribe and print events, validating each against the schema and reporting seq gaps."""
    with user_errors():
        from mmstream.errors import ConfigError

        unknown = sorted(set(types) - set(EVENT_TYPES))
        if unknown:
            raise ConfigError(f"--type {', '.join(unknown)}: use {', '.join(EVENT_TYPES)}")
        broker = broker_from_options(url, password_file, ca_file, insecure)
        report, display = ListenReport(), Display(jsonl)
        try:
            asyncio.run(_run_for(_listen(broker, subscriptions(prefix, device, types), report,
                                         display, count), seconds))
        except KeyboardInterrupt:
            pass
        finally:
            display.close()
            typer.echo(report.summary(), err=True)
    if strict and (report.gaps or report.invalid):
        raise typer.Exit(1)


async def _run_for(listening: object, seconds: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listening, seconds)  # type: ignore[arg-type]

