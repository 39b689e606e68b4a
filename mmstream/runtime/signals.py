"""SIGINT/SIGTERM: the first asks for an orderly drain, a second one stops at once.

`stop_on_signals` is the one place the program installs signal handlers: the daemon (where
SIGHUP also reloads the pipeline file), replays, batches and the demo all use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # what shells report: 128 + signal


@dataclass
class Signals:
    """What arrived: the first stop signal (for the exit code), and how many."""

    first: signal.Signals | None = None
    count: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def exit_code(self) -> int | None:
        """128 + the signal that stopped the run, or None when none did."""
        return EXIT_BY_SIGNAL.get(self.first) if self.first is not None else None


@contextlib.contextmanager
def stop_on_signals(on_stop: Callable[[], None] | None = None,
                    on_reload: Callable[[], None] | None = None) -> Iterator[Signals]:
    """Inside a running event loop: SIGINT/SIGTERM set `signals.stop` (and call `on_stop`);
    a second one cancels the task that entered this block; SIGHUP calls `on_reload`."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    received = Signals()

    def stop(sig: signal.Signals) -> None:
        received.count += 1
        if received.first is None:
            received.first = sig
        elif main is not None:
            main.cancel()
        received.stop.set()
        if on_stop is not None:
            on_stop()

    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, stop, sig)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)
        handled.append(signal.SIGHUP)
    try:
        yield received
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
