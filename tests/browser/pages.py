"""What the browser tests do in Chromium: one browser context per person, signing in (through
the OIDC provider's pages or the console's own form), collecting console errors, and
screenshots for the documentation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    ViewportSize,
)

from tests.browser.seed import LocalAccount
from tests.oidc_provider import ProviderUser

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  console.error(`CSP violation: ${event.violatedDirective} blocked ${blocked}`);
});
"""
"""Runs before each document's own scripts: a CSP violation becomes a console error even
where the browser only reports it to the page."""


@dataclass(frozen=True)
class Problem:
    url: str
    kind: str
    text: str


@dataclass
class ConsoleErrors:
    """Console errors, uncaught exceptions and CSP violations on the console's pages.

    A page answered with an error status on purpose (a refusal the test provokes) makes
    Chromium log "Failed to load resource"; :meth:`expecting` allows that status meanwhile.
    The provider's pages are not the console's and are not watched."""

    base_url: str
    problems: list[Problem] = field(default_factory=list)
    pages_watched: int = 0
    _expected: set[int] = field(default_factory=set)

    def watch(self, page: Page) -> None:
        self.pages_watched += 1
        page.on("console", lambda message: self._on_console(page, message))
        page.on("pageerror", lambda error: self._on_pageerror(page, error))

    def _ours(self, page: Page) -> bool:
        return page.url.startswith(f"{self.base_url}/console")

    def _on_console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type != "error" or not self._ours(page):
            return
        failed = FAILED_LOAD.search(message.text)
        if failed and int(failed.group(1)) in self._expected:
            return
        self.problems.append(Problem(page.url, "console", message.text))

    def _on_pageerror(self, page: Page, error: Error) -> None:
        if self._ours(page):
            self.problems.append(Problem(page.url, "pageerror", str(error)))

    @contextmanager
    def expecting(self, status: int) -> Iterator[None]:
        self._expected.add(status)
        try:
            yield
        finally:
            self._expected.discard(status)

    def assert_none(self) -> None:
        assert self.pages_watched, "no page was watched"
        assert not self.problems, "\n".join(f"{p.kind} at {p.url}: {p.text}" for p in self.problems)


@dataclass(frozen=True)
class Screenshots:
    """Writes ``console-<name>.png`` into ``folder``; does nothing when there is none."""

    folder: Path | None

    def take(self, page: Page, name: str, *, at: str | None = None) -> None:
        """The viewport (no focus ring); ``at``: scrolled so that this element is on top."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        if at is not None:
            page.locator(at).evaluate("(element) => element.scrollIntoView({block: 'start'})")
        page.screenshot(path=self.folder / f"console-{name}.png", animations="disabled")


@dataclass
class Visitor:
    """One person's browser: a context of their own (cookies apart), one tab."""

    name: str
    context: BrowserContext
    page: Page
    base_url: str
    dialogs: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base_url}{path}")

    def csrf_token(self) -> str:
        """The session's CSRF token, as every form of the page carries it."""
        return self.page.locator('input[name="csrf_token"]').first.input_value()

    def sign_in_with_provider(self, user: ProviderUser) -> None:
        """From the console's login page through the provider's sign-in and consent pages
        and back; the browser ends where the login page's ``next`` pointed."""
        page = self.page
        if "/console/login" not in page.url:
            self.goto("/console/login")
        page.get_by_role("link", name=re.compile(r"^Sign in with ")).click()
        page.wait_for_url(re.compile(r"/interaction/"))
        page.locator('input[name="login"]').fill(user.name)
        page.locator('input[name="password"]').fill(user.password)
        page.get_by_role("button", name="Sign-in").click()
        page.wait_for_load_state()
        if page.get_by_role("heading", name="Authorize").count():
            page.get_by_role("button", name="Continue").click()
        page.wait_for_url(re.compile(re.escape(self.base_url) + r"/console(?!/login|/auth)"))

    def sign_in_locally(self, account: LocalAccount) -> None:
        """The console's own form, with the keyboard: name, Tab, password, Enter."""
        page = self.page
        page.locator("#login-name").fill(account.name)
        page.keyboard.press("Tab")
        page.keyboard.type(account.password)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(re.escape(self.base_url) + r"/console(?!/login)"))


@dataclass
class People:
    """The visitors of the scenario by name, each in a browser context of their own."""

    browser: Browser
    base_url: str
    errors: ConsoleErrors
    visitors: dict[str, Visitor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Visitor:
        if name not in self.visitors:
            self.visitors[name] = self._open(name)
        return self.visitors[name]

    def _open(self, name: str) -> Visitor:
        context = self.browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.add_init_script(REPORT_CSP)
        page = context.new_page()
        visitor = Visitor(name, context, page, self.base_url)
        self.errors.watch(page)

        def accept(dialog: Dialog) -> None:
            visitor.dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        return visitor

    def close(self) -> None:
        for visitor in self.visitors.values():
            visitor.context.close()
