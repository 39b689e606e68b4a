"""The Prometheus endpoint of a running daemon, and the structured, redacting logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from mmstream.cli.doctor_cmd import heartbeat_age
from mmstream.daemon import Service
from mmstream.logs import MAX_MESSAGE_CHARS, configure_logging, redact
from mmstream.runtime import metrics
from tests.conftest import wait_until
from tests.pipelines import synthetic_config


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text, whatever order its labels come in."""
    for match in re.finditer(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    raise AssertionError(f"{name} {labels} not in the metrics")


async def test_metrics_endpoint_of_a_running_pipeline(tmp_path: Path) -> None:
    config = synthetic_config(tmp_path, 2.5, metrics={"enabled": True, "port": 0,
                                                      "sample_interval_s": 0.1})
    service = Service(config)
    running = asyncio.create_task(service.run())
    await asyncio.wait_for(service.up.wait(), 30)
    url = service.metrics_url
    assert url is not None and url.startswith("http://127.0.0.1:")  # loopback by default

    first_channel = service.pipeline.channels[0].name  # type: ignore[union-attr]

    def sampled() -> str | None:  # this pipeline's sampler has run and its stages worked
        found = scrape(url)
        return found if f'mmstream_queue_capacity{{channel="{first_channel}"}}' in found and (
            re.search(r'mmstream_stage_seconds_count{stage="overload"} [1-9]', found)) else None

    text = await asyncio.to_thread(wait_until, sampled, 30, "the metrics' first samples")
    healthy = await asyncio.to_thread(health, url)
    report = await asyncio.wait_for(running, 30)
    unhealthy = await asyncio.to_thread(health, url)

    assert sample_value(text, "mmstream_stage_seconds_count", stage="overload") > 0
    assert sample_value(text, "mmstream_queue_capacity", channel=first_channel) == 64
    assert 0 <= sample_value(text, "mmstream_queue_depth", channel=first_channel) <= 64
    age = heartbeat_age(text, __import__("time").time())
    assert age is not None and age < 60
    assert sum(report.events.values()) == 0  # analysis stages off: only plumbing
    with pytest.raises(urllib.error.URLError):  # closed with the service
        await asyncio.to_thread(scrape, url)
    assert healthy.returncode == 0 and "healthy" in healthy.stdout
    assert unhealthy.returncode == 1 and "unhealthy" in unhealthy.stderr


def health(url: str) -> subprocess.CompletedProcess[str]:
    """`mmstream health`, the container HEALTHCHECK, against the daemon's endpoint."""
    return subprocess.run([sys.executable, "-m", "mmstream", "health", "--url", url],
                          capture_output=True, text=True, timeout=60)


def test_metric_functions_for_other_modules() -> None:
    metrics.observe_rtf("whisper-test", audio_s=2.0, compute_s=0.5)
    metrics.observe_batch_size("infer-test", 8)
    metrics.set_spool_depth("mqtt-test", 42)
    metrics.count_reconnect("mqtt-test")
    metrics.count_drop("mic-test", "overflow:AudioChunk", 3)
    with metrics.timed_model_load("model-test"):
        time.sleep(0.05)  # the load being timed
    text = generate_latest(metrics.REGISTRY).decode()
    assert sample_value(text, "mmstream_whisper_rtf_sum", model="whisper-test") == 0.25
    assert sample_value(text, "mmstream_batch_size_sum", stage="infer-test") == 8
    assert sample_value(text, "mmstream_spool_depth", sink="mqtt-test") == 42
    assert sample_value(text, "mmstream_reconnects_total", part="mqtt-test") >= 1
    assert sample_value(text, "mmstream_drops_total", where="mic-test",
                        reason="overflow:AudioChunk") >= 3
    assert sample_value(text, "mmstream_model_load_seconds", model="model-test") >= 0.05


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", "json", {"mmstream.noisy": "error"}, stream=stream)
    yield stream
    configure_logging("warning", "text")


def test_json_logs_mask_secrets_and_honour_module_levels(log_stream: io.StringIO) -> None:
    logging.getLogger("mmstream.sinks.mqtt").info(
        "connecting to %s", "mqtts://bob:hunter2@broker:8883", extra={"attempt": 2})
    logging.getLogger("mmstream.noisy").warning("hidden: below this module's level")
    logging.getLogger("mmstream.noisy").error("shown token=abc123")
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["mmstream.sinks.mqtt", "mmstream.noisy"]
    assert lines[0]["message"] == "connecting to mqtts://bob:***@broker:8883"
    assert lines[0]["level"] == "info" and lines[0]["attempt"] == 2
    assert lines[1]["message"] == "shown token=***"
    assert "hunter2" not in log_stream.getvalue() and "abc123" not in log_stream.getvalue()


def test_redact_forms() -> None:
    assert redact("password=s3cret, user=x") == "password=***, user=x"
    assert redact('{"password": "s3cret", "user": "x"}') == '{"password": ***, "user": "x"}'
    assert redact("MMSTREAM_SINKS__MQTT__PASSWORD=s3cret") == "MMSTREAM_SINKS__MQTT__PASSWORD=***"
    assert redact("Authorization: Bearer eyJ.abc.def") == "Authorization: Bearer ***"
    assert redact("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"  # host:port is no secret


# Shapes that made the old patterns quadratic (a match tried, and failing after a long scan, at
# every position): letters with no "://", many "scheme://user:" with no "@", unclosed quotes
# after "password=", bearer words with nothing after them.
ADVERSARIAL = ("a", "a://u:", 'password="x ', "bearer  ", "x:", "a://b:c/d@ ", "token token ")


@pytest.mark.timeout(60)  # the old patterns took hours on 1 MB: a hang fails here, not CI
@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_redact_runs_in_linear_time(unit: str) -> None:
    # No wall-clock threshold (machines are noisy): 10 times the text must cost about 10 times
    # the time, not 100 (quadratic); < 30 leaves room for noise and cache effects.
    def seconds(size: int) -> float:
        text = unit * (size // len(unit))
        started = time.perf_counter()
        redact(text)
        return time.perf_counter() - started

    small = min(seconds(100_000) for _ in range(3))
    large = seconds(1_000_000)
    assert large / max(small, 1e-4) < 30, (unit, small, large)


def test_a_huge_log_message_is_cut_before_it_is_redacted(log_stream: io.StringIO) -> None:
    logging.getLogger("mmstream.sinks.mqtt").warning("command %s password=hunter2",
                                                     "x" * 1_000_000)
    message = json.loads(log_stream.getvalue())["message"]
    assert len(message) < MAX_MESSAGE_CHARS + 100
    assert message.endswith("more characters)") and "hunter2" not in message
