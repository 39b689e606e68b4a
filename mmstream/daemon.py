"""The daemon around a pipeline: signals, systemd notify + watchdog, metrics, logging, reload.

- SIGINT/SIGTERM: STOPPING=1, drain the pipeline, exit; a second signal stops at once.
- SIGHUP: re-read the pipeline file. An invalid file is reported (log + STATUS=) and the
  running pipeline keeps going; a valid one drains the running pipeline (nothing queued is
  lost, sinks flush) and starts the new one, with RELOADING=1 … READY=1 around it.
- READY=1 once every sink is open and every source has opened (or, a live device, failed its
  first try and is reconnecting); WATCHDOG=1 from a task on
  this event loop, so a blocked loop stops the pings and systemd restarts the daemon.
- Metrics served only when `runtime.metrics.enabled`, on 127.0.0.1 unless configured.
- The live view (web/live/) served when `web.enabled` and the run is live or paced, on
  127.0.0.1:8787 unless configured; its server and what it shows outlive reloads, like the
  metrics endpoint. Its address goes to stderr (`web view on http://…/`) and STATUS=.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mmstream.config import PipelineConfig
from mmstream.errors import MmstreamError
from mmstream.logs import configure_from_config
from mmstream.runtime import metrics
from mmstream.runtime.observer import PipelineObserver
from mmstream.runtime.pipeline import Pipeline, PipelineReport
from mmstream.runtime.sdnotify import Notifier
from mmstream.runtime.signals import Signals, stop_on_signals
from mmstream.runtime.stage import Sink

if TYPE_CHECKING:
    from mmstream.web.live.service import LiveWeb

log = logging.getLogger(__name__)

Loader = Callable[[], PipelineConfig]
Builder = Callable[[PipelineConfig, list[PipelineObserver], list[Sink]], Pipeline]


class ReadyNotifier(PipelineObserver):
    def __init__(self, notifier: Notifier, description: str, is_ready: asyncio.Event) -> None:
        self.notifier = notifier
        self.description = description
        self.is_ready = is_ready

    def ready(self) -> None:
        self.notifier.ready(f"running: {self.description}")
        self.is_ready.set()

    def source_restart(self, source: str, reason: str) -> None:
        self.notifier.status(f"reconnecting {source}: {reason}"[:200])


def describe(config: PipelineConfig, web_url: str | None = None) -> str:
    sources = ", ".join(f"{s.kind}:{s.id}" for s in config.sources)
    web = f"; web view on {web_url}" if web_url else ""
    return f"device {config.device_id}; sources {sources}{web}"


def _default_builder(config: PipelineConfig, observers: list[PipelineObserver],
                     sinks: list[Sink]) -> Pipeline:
    from mmstream.build import build_pipeline

    return build_pipeline(config, extra_sinks=sinks, observers=observers)


class Service:
    """Runs one pipeline at a time until stopped; `reload` (SIGHUP) swaps in a new one."""

    def __init__(self, config: PipelineConfig, *, loader: Loader | None = None,
                 builder: Builder = _default_builder, notifier: Notifier | None = None,
                 observers: Sequence[PipelineObserver] = ()) -> None:
        self.config = config
        self.observers = list(observers)  # e.g. a replay's progress bar
        self.loader = loader
        self.builder = builder
        self.notifier = notifier or Notifier()
        self.pipeline: Pipeline | None = None
        self.up = asyncio.Event()  # set while a pipeline is ready (cleared across a reload)
        self.reloads = 0
        self._shutdown = asyncio.Event()
        self._stop_current = asyncio.Event()
        self._next_config: PipelineConfig | None = None
        self._metrics_server: metrics.MetricsServer | None = None
        self._web: LiveWeb | None = None
        self._last_seq: dict[str, int] = {}

    @property
    def stopping(self) -> bool:
        return self._shutdown.is_set()

    def stop(self) -> None:
        if not self._shutdown.is_set():
            self.notifier.stopping()
        self._shutdown.set()
        self._stop_current.set()

    def reload(self) -> bool:
        """Validate the pipeline file again; on success the running pipeline drains and swaps."""
        if self.loader is None:
            log.warning("reload asked, but this pipeline was not loaded from a file")
            return False
        try:
            config = self.loader()
        except MmstreamError as exc:
            log.error("reload rejected, the running pipeline goes on: %s", exc)
            self.notifier.status(f"reload rejected: {exc}"[:200])
            return False
        log.warning("reloading the pipeline file")
        self.notifier.reloading()
        self._next_config = config
        self._stop_current.set()
        return True

    async def run(self) -> PipelineReport:
        watchdog = asyncio.create_task(
            self.notifier.feed_watchdog(self.config.runtime.watchdog.interval_s))
        finished = False  # the pipeline ended by itself (its input played out), not stopped
        try:
            while True:
                report = await self._run_once(self.config)
                self._last_seq = report.last_seq  # a reloaded pipeline numbers on
                if self._shutdown.is_set() or self._next_config is None:
                    finished = not self._shutdown.is_set()
                    return report
                self.config, self._next_config = self._next_config, None
                self._stop_current = asyncio.Event()
                self.reloads += 1
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self._close_metrics()
            if self._web is not None:
                await self._web.close(ended=finished)
            self.notifier.close()

    async def _run_once(self, config: PipelineConfig) -> PipelineReport:
        rt = config.runtime
        configure_from_config(rt.logging.level, rt.logging.format, rt.logging.levels)
        if not rt.watchdog.notify:
            self.notifier.address = None
        self._apply_metrics_server(config)
        config, web_sinks = await self._apply_web(config)
        self.up.clear()
        observers: list[PipelineObserver] = [
            ReadyNotifier(self.notifier, describe(config, self.web_url), self.up),
            *self.observers]
        sampler: metrics.PipelineMetrics | None = None
        if self._metrics_server is not None:
            sampler = metrics.PipelineMetrics()
            observers.append(sampler)
        pipeline = self.pipeline = self.builder(config, observers, web_sinks)
        if sampler is None:
            return await pipeline.run(self._stop_current, after=self._last_seq)
        sampling = asyncio.create_task(sampler.run_sampler(rt.metrics.sample_interval_s))
        try:
            return await pipeline.run(self._stop_current, after=self._last_seq)
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            sampler.sample()

    def _apply_metrics_server(self, config: PipelineConfig) -> None:
        """Start, keep or move the endpoint to what this config asks (port 0: any port)."""
        wanted = config.runtime.metrics
        server = self._metrics_server
        if server is not None:
            same = wanted.host == server.host and wanted.port in (0, server.port)
            if not wanted.enabled or not same:
                self._close_metrics()
        if wanted.enabled and self._metrics_server is None:
            self._metrics_server = metrics.serve_metrics(wanted.host, wanted.port)

    async def _apply_web(self, config: PipelineConfig) -> tuple[PipelineConfig, list[Sink]]:
        """Start, keep, move or stop the live view for this config; returns the config with
        `web.public_url` resolved (Home Assistant links there) and the view's sink, if any."""
        if self._web is None:
            if not config.serves_web:
                return config, []
            from mmstream.web.live.service import LiveWeb

            self._web = LiveWeb()
        if await self._web.apply(config, first=self.reloads == 0):
            token = " (token required)" if config.web.token else ""
            print(f"web view on {self._web.url}{token}", file=sys.stderr, flush=True)
        sink = self._web.sink_for(config, self.reloads)
        if sink is None:
            return config, []
        web = config.web.model_copy(update={"public_url": self._web.public_url(config)})
        return config.model_copy(update={"web": web}), [sink]

    def _close_metrics(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None

    @property
    def metrics_url(self) -> str | None:
        return self._metrics_server.url if self._metrics_server else None

    @property
    def web_url(self) -> str | None:
        """The live view's address while it is served (its port, when port 0 picked one)."""
        return self._web.url if self._web is not None else None


async def run_service(config: PipelineConfig, loader: Loader | None = None,
                      **kwargs: Any) -> tuple[PipelineReport, Signals]:
    """Run with signal handling: TERM/INT drain (twice: stop now), HUP reloads the file.
    Returns the last pipeline's report and which signal, if any, stopped the run."""
    service = Service(config, loader=loader, **kwargs)
    with stop_on_signals(on_stop=service.stop, on_reload=service.reload) as signals:
        return await service.run(), signals
