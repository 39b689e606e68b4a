"""The live page's states in a real browser: "loading models" while the pipeline opens its
stages, "live" once it runs, "run ended" when its input played out (the server says so before
it closes the stream), and a placeholder, never a broken image, until the first picture. The
daemon's Service runs in a thread with a stand-in stage whose models load until the test says
so and a source that ends when told ("daemon unreachable" is in test_live_daemon.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_until

from mmstream.config import PipelineConfig
from mmstream.config.sources import SyntheticSourceConfig
from mmstream.daemon import Service
from mmstream.media import AnalysedFrame, VideoFrame
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline
from mmstream.runtime.stage import Item, Sink, Source, Stage
from tests.pipelines import synthetic_config
from tests.web.pages import WatchedPage

CONNECTION_JS = "(state) => document.getElementById('connection').dataset.state === state"
PICTURE_SHOWN_JS = """() => {
  const img = document.querySelector('.stream .frame img');
  return img !== null && img.complete && img.naturalWidth > 0;
}"""


class FramesUntilTold(Source):
    """Frames with content, ten a second, until `finished` is set: then the input ends."""

    kind = "told"

    def __init__(self, config: SyntheticSourceConfig, finished: asyncio.Event) -> None:
        super().__init__(config)
        self.finished = finished

    async def __aiter__(self) -> AsyncIterator[Item]:
        image = np.zeros((48, 64, 3), dtype=np.uint8)
        image[:, :32] = (200, 40, 40)
        n = 0
        while not self.finished.is_set():
            n += 1
            yield VideoFrame(self.stream_id, n / 10, image, n)
            await asyncio.sleep(0.1)  # the source's pace, as a camera's


class ModelsLoadingUntilTold(Stage):
    """Stands in for the analysis: its `open` (loading models) lasts until `loaded` is set;
    then each frame goes on as an analysed one, the picture the page shows."""

    name = "infer"

    def __init__(self, loaded: asyncio.Event) -> None:
        self.loaded = loaded

    async def open(self) -> None:
        await self.loaded.wait()

    async def process(self, item: Item) -> None:
        if isinstance(item, VideoFrame):
            await self.emit(AnalysedFrame(item.stream_id, item.t_capture, item.image,
                                          item.t_capture))
        else:
            await self.emit(item)


@dataclass
class ThreadedRun:
    """The daemon's Service on its own event loop in a thread; `tell` sets one of its events."""

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    service: Service | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def tell(self, event: asyncio.Event) -> None:
        self.loop.call_soon_threadsafe(event.set)

    def run(self, config: PipelineConfig) -> None:
        def builder(cfg: PipelineConfig, observers: list[PipelineObserver],
                    sinks: list[Sink]) -> Pipeline:
            return Pipeline([FramesUntilTold(cfg.sources[0], self.finished)],
                            [ModelsLoadingUntilTold(self.loaded)], sinks, device_id="t1",
                            observers=observers)

        async def main() -> None:
            self.service = Service(config, builder=builder)
            await self.service.run()

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.loop.close()
            self.done.set()


@pytest.fixture
def threaded_run(tmp_path: Path) -> Iterator[ThreadedRun]:
    run = ThreadedRun()
    thread = threading.Thread(target=run.run, args=(synthetic_config(tmp_path, 600),),
                              daemon=True)
    thread.start()
    yield run
    if not run.done.is_set():
        run.tell(run.loaded)
        run.tell(run.finished)
    thread.join(60)


def test_the_page_says_loading_models_then_live_then_run_ended(
        threaded_run: ThreadedRun, browser_page: WatchedPage,
        keep_screenshot: Callable[[WatchedPage, str], Path]) -> None:
    url = wait_until(lambda: threaded_run.service and threaded_run.service.web_url, 30,
                     "the live view's address")
    page = browser_page.page
    page.goto(url, wait_until="load")

    page.wait_for_function(CONNECTION_JS, arg="loading")
    assert page.inner_text("#connection") == "loading models…"
    page.wait_for_function("() => document.querySelector('.stream .frame .placeholder')")
    assert page.inner_text(".stream .frame .placeholder") == "loading models…"
    assert page.locator(".stream .frame img").count() == 0  # no image without a picture
    keep_screenshot(browser_page, "live-loading")

    threaded_run.tell(threaded_run.loaded)
    page.wait_for_function(CONNECTION_JS, arg="live")
    page.wait_for_function(PICTURE_SHOWN_JS)
    assert page.locator(".stream .frame .placeholder").count() == 0
    assert page.inner_text("#connection") == "live"

    threaded_run.tell(threaded_run.finished)
    page.wait_for_function(CONNECTION_JS, arg="ended")
    assert page.inner_text("#connection") == "run ended"
    assert threaded_run.done.wait(60) and threaded_run.error is None
    assert page.evaluate(PICTURE_SHOWN_JS)  # the last picture stays, whole
    assert page.locator(".stream .frame img").count() == 1
    keep_screenshot(browser_page, "live-ended")
    # the stream closed after its end message: the page did not try again
    assert page.evaluate("() => document.getElementById('connection').dataset.state") == "ended"
    assert sum("/updates" in request for request in browser_page.requests) == 1
    assert browser_page.errors == []
