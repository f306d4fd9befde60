"""Debian's Chromium driven by Playwright (no browser download: `executable_path`), as a person's browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Root needs --no-sandbox; the rest keep Chromium from calling home on a machine with no network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser; fails with the fix when Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found: run `make setup` (it installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def scroll_through(page: object, timeout_ms: float = 120_000) -> int:
    """Scroll every chart of a report into view, as a reader would, until all are drawn; returns how many."""
    page.wait_for_selector("body[data-charts]")  # type: ignore[attr-defined]
    page.evaluate(  # type: ignore[attr-defined]
        """async () => {
          for (const el of document.querySelectorAll('div.chart')) {
            el.scrollIntoView();
            await new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
          }
          window.scrollTo(0, 0);
        }"""
    )
    page.wait_for_function(  # type: ignore[attr-defined]
        "document.body.dataset.rendered === document.body.dataset.charts", timeout=timeout_ms
    )
    return int(page.get_attribute("body", "data-charts"))  # type: ignore[attr-defined]
