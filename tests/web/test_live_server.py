"""The live view's server on loopback, fed by hand (no models): updates, pictures, token,
a viewer who leaves, a port in use, a reload of the daemon around it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from conftest import async_wait_until

from mmstream.build import build_sinks
from mmstream.config import MqttSinkConfig, PipelineConfig, WebConfig, validate_pipeline
from mmstream.config.sinks import HomeAssistantConfig
from mmstream.daemon import Service
from mmstream.demo_broker import AmqttBroker, MosquittoBroker
from mmstream.errors import ConfigError
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Sink
from mmstream.sinks.mqtt import MqttSink
from mmstream.sinks.mqtt.discovery import discovery_messages
from mmstream.sources.synthetic import SyntheticSource
from mmstream.web.live.server import WebServer
from mmstream.web.live.view import LiveView
from tests.pipelines import synthetic_config
from tests.web.live_helpers import emotion, frame, sse_messages, transcript

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
async def served() -> AsyncIterator[tuple[LiveView, WebServer]]:
    view = LiveView(WebConfig(port=0, frame_fps=2.0), "kitchen")
    server = WebServer(view, "127.0.0.1", 0)
    await server.start()
    try:
        yield view, server
    finally:
        await server.close()


async def next_matching(messages: AsyncIterator[dict[str, Any]], key: str) -> dict[str, Any]:
    """The next update whose stream `cam` carries `key`."""
    async for message in messages:
        news = message.get("streams", {}).get("cam", {})
        if news.get(key):
            return news
    raise AssertionError(f"the stream ended before an update with {key}")


async def test_a_viewer_gets_everything_then_news_and_the_picture(
        served: tuple[LiveView, WebServer]) -> None:
    view, server = served
    view.state.add_event(transcript("hello fr", final=False))
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url) as page:
            assert page.status == 200 and "connect-src 'self'" in page.headers[
                "Content-Security-Policy"]
            assert 'id="live-settings"' in await page.text()
        async with http.get(server.url + "updates") as stream:
            messages = sse_messages(stream)
            first = await anext(messages)
            assert first["full"] and first["viewers"] == 1 and "health" in first
            assert first["streams"]["cam"]["transcripts"][0]["text"] == "hello fr"

            view.state.add_event(transcript("hello from the kitchen", final=True, seq=2))
            lines = (await next_matching(messages, "transcripts"))["transcripts"]
            assert [(line["key"], line["final"]) for line in lines] == [("0.0", True)]

            view.state.add_frame(frame())
            announced = (await next_matching(messages, "frame"))["frame"]
            assert announced["no"] == 1 and announced["emotion"] == "happy"
            async with http.get(server.url + "frame/cam.jpg?n=1") as picture:
                assert picture.headers["Content-Type"] == "image/jpeg"
                image = cv2.imdecode(np.frombuffer(await picture.read(), np.uint8),
                                     cv2.IMREAD_COLOR)
            assert image.shape == (240, 320, 3)
            _blue, green, red = (int(v) for v in image[150, 20])
            assert red > 150 and green < 100  # the picture: red on the left, black on the right
            assert image[150, 250].max() < 60
            assert image[28:34, 60:80, 1].max() > 150  # the face box's top edge, green

            view.state.add_event(emotion(2.0, "sad", -0.4))
            assert (await next_matching(messages, "mood"))["mood"] == [[2.0, -0.4, "sad"]]
        async with http.get(server.url + "frame/nowhere.jpg") as missing:
            assert missing.status == 404


async def test_pictures_are_encoded_at_most_at_the_frame_rate_whoever_asks(
        served: tuple[LiveView, WebServer]) -> None:
    view, _ = served
    view.state.add_frame(frame(t=1.0))
    first = await view.picture("cam")
    view.state.add_frame(frame(t=1.1, width=160))  # newer, but within 1/frame_fps
    assert await view.picture("cam") == first  # the same bytes, not a second encoding


async def test_a_wrong_or_missing_token_gets_401_and_nothing_else() -> None:
    view = LiveView(WebConfig(port=0, token=TOKEN), "kitchen")
    view.state.add_frame(frame())
    server = WebServer(view, "127.0.0.1", 0, TOKEN)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("", "updates", "frame/cam.jpg", "status",
                         "status?token=wrong", "frame/cam.jpg?token=" + TOKEN[:-1]):
                async with http.get(server.url + path) as refused:
                    assert refused.status == 401, path
                    assert await refused.read() == b""
            async with http.get(server.url + "frame/cam.jpg",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as allowed:
                assert allowed.status == 200
            async with http.get(server.url + f"status?token={TOKEN}") as allowed:
                assert (await allowed.json())["streams"]["cam"]["frames"] == 1
    finally:
        await server.close()


async def test_without_a_token_only_loopback_names_are_answered(
        served: tuple[LiveView, WebServer]) -> None:
    _, server = served
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "status", headers={"Host": "localhost"}) as ok:
            assert ok.status == 200
        # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1
        async with http.get(server.url + "status",
                            headers={"Host": f"evil.example:{server.port}"}) as refused:
            assert refused.status == 403 and await refused.read() == b""


async def test_a_viewer_who_leaves_costs_nothing_after(served: tuple[LiveView, WebServer]
                                                       ) -> None:
    view, server = served
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "updates") as stream:
            await anext(sse_messages(stream))
            assert view.viewers == 1 and len(server._streams) == 1
    await async_wait_until(lambda: view.viewers == 0 and not server._streams, 10,
                           "the update stream of the closed page to end")


async def test_close_ends_open_update_streams(served: tuple[LiveView, WebServer]) -> None:
    view, server = served
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "updates") as stream:
            await anext(sse_messages(stream))
            await asyncio.wait_for(server.close(), 10)
            with contextlib.suppress(aiohttp.ClientPayloadError):  # cut mid-stream: the
                await asyncio.wait_for(stream.content.read(), 10)  # browser reconnects
            assert stream.content.at_eof() or stream.content.exception() is not None
    assert view.viewers == 0


async def test_a_port_in_use_names_the_port_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebServer(LiveView(WebConfig(port=port)), "127.0.0.1", port)
        with pytest.raises(ConfigError, match=rf"web\.port {port}: address already in use on "
                                              r"127\.0\.0\.1.*MMSTREAM_WEB__PORT"):
            await server.start()


async def test_the_daemon_serves_the_view_and_keeps_it_across_a_reload(tmp_path: Path) -> None:
    config = synthetic_config(tmp_path, 30.0)
    service = Service(config, loader=lambda: config)
    running = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.up.wait(), 30)
        url = service.web_url
        assert url is not None and url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "updates") as stream:
                messages = sse_messages(stream)
                first = await anext(messages)
                assert first["health"]["sources"] == [
                    {"name": "synthetic:synth0", "state": "ok", "reason": ""}]
                assert service.reload()
                async for message in messages:  # the same connection, the next pipeline
                    if message.get("health", {}).get("reloads") == 1:
                        break
            assert service.web_url == url
    finally:
        service.stop()
        await asyncio.wait_for(running, 30)
    assert service.web_url is None


async def test_the_daemon_stops_at_start_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = synthetic_config(tmp_path, 5.0)
        config = config.model_copy(update={"web": config.web.model_copy(update={"port": port})})
        with pytest.raises(ConfigError, match=rf"web\.port {port}"):
            await asyncio.wait_for(Service(config).run(), 30)


async def test_home_assistant_links_to_the_view_the_daemon_serves(tmp_path: Path) -> None:
    config = synthetic_config(tmp_path, 1.0).model_copy(update={
        "sinks": validate_pipeline({"sources": [{"kind": "synthetic"}], "sinks": {
            "mqtt": {"homeassistant": {"enabled": True}}}}).sinks})
    built: list[PipelineConfig] = []

    def builder(cfg: PipelineConfig, observers: list[PipelineObserver],
                sinks: list[Sink]) -> Pipeline:
        built.append(cfg)
        return Pipeline([SyntheticSource(cfg.sources[0])], [], sinks, device_id="t1",
                        observers=observers)

    service = Service(config, builder=builder)
    await asyncio.wait_for(service.run(), 30)
    url = built[0].web.public_url
    assert url is not None and url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
    mqtt = next(sink for sink in build_sinks(built[0]) if isinstance(sink, MqttSink))
    assert mqtt.configuration_url == url
    messages = discovery_messages(HomeAssistantConfig(enabled=True), "mmstream", "t1", ["cam"],
                                  configuration_url=url)
    assert {json.loads(body)["device"]["configuration_url"] for _, body in messages} == {url}
    unlinked = discovery_messages(HomeAssistantConfig(enabled=True), "mmstream", "t1", ["cam"])
    assert all("configuration_url" not in json.loads(body)["device"] for _, body in unlinked)


async def test_the_mqtt_sink_tells_the_health_panel_its_link_and_spool(
        broker: MosquittoBroker | AmqttBroker) -> None:
    sink = MqttSink(MqttSinkConfig(url=broker.url, connect_timeout_s=2), "t1")
    assert sink.health()["connected"] is False  # not open yet
    async with sink:
        health = sink.health()
    assert health["connected"] is True and health["spool_depth"] == 0
    assert health["broker"].endswith(str(broker.port)) and health["last_error"] == ""
    assert sink.health()["connected"] is False  # closed
