"""Browser fixtures: Debian's Chromium driven by Playwright, against the console of
tests/browser/server.py.

* ``console``: the running console (module scope): ``url``, ``app``, ``clock``, ``provider``.
* ``browser``: headless Chromium from ``/usr/bin/chromium`` (never a downloaded build).
* ``console_errors``: every console error, uncaught exception and CSP violation of every
  page the module opens; a test ends with ``console_errors.assert_none()``.
* ``screenshots``: ``screenshots.take(page, "models")`` writes
  ``$MODELYARD_SCREENSHOTS/console-models.png`` when that variable is set (the committed
  docs/images are made with ``MODELYARD_SCREENSHOTS=docs/images``), else does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.browser.pages import ConsoleErrors, Screenshots
from tests.browser.server import RunningConsole, running_console

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_ENV = "MODELYARD_SCREENSHOTS"
EXPECT_TIMEOUT_MS = 20_000
"""How long an ``expect(...)`` waits for the page to get there (Playwright's default, 5 s,
is short for a machine busy with other tests); a passing check returns at once."""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    with running_console(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests drive Debian's Chromium, and {CHROMIUM} is missing: "
            "run `make system-deps` (apt-get install chromium)"
        )
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def console_errors(console: RunningConsole) -> ConsoleErrors:
    return ConsoleErrors(console.url)


@pytest.fixture(scope="module")
def screenshots() -> Screenshots:
    folder = os.environ.get(SCREENSHOTS_ENV)
    return Screenshots(Path(folder) if folder else None)
