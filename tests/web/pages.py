"""A browser tab under watch, for the tests of mmstream's pages (see conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page


@dataclass
class WatchedPage:
    """A browser tab and what it did: the URLs it requested, its console errors."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)  # the pages loaded, in order

    def open(self, path: Path) -> None:
        """Load a local file and wait until it and its scripts are done (the load event)."""
        self.opened.append(path.resolve().as_uri())
        self.page.goto(self.opened[-1], wait_until="load")

    def other_requests(self) -> list[str]:
        """What the pages fetched besides themselves (inline data: URIs are not fetches)."""
        return [url for url in self.requests
                if url not in self.opened and not url.startswith("data:")]
