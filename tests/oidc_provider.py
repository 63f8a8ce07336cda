"""A real OpenID Connect provider for tests, and a browser to log in through its pages.

The provider is the certified ``oidc-provider`` package from npm, run by node from
``tests/oidc`` (install it once with ``npm ci --prefix tests/oidc``). It binds 127.0.0.1
port 0 itself and prints the issuer URL it got, so no test picks a port another process
could take. Its users, clients and passwords are defined here, and only here.

:class:`Browser` does what a person's browser does on the provider's pages: it follows
redirects, keeps cookies, and fills in and submits HTML forms, stopping when the provider
redirects back to modelyard.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from modelyard.operators.oidc import DeviceLogin, OidcConfig, parse_role_map

PROVIDER_DIR = Path(__file__).parent / "oidc"
READY_LINE = re.compile(r"oidc provider ready: (http://\S+)")
START_DEADLINE_S = 60.0

CLIENT_ID = "modelyard"
CLIENT_SECRET = "test-client-secret-4f1c9a"
PUBLIC_CLIENT_ID = "modelyard-cli"
REDIRECT_URI = "http://127.0.0.1:9/console/auth/callback"
"""Never served: a login stops at the provider's redirect to it and reads its query."""
ROLE_MAP = "ml-operators=operator,ml-approvers=approver,ml-admins=admin,ml-admins=auditor"


@dataclass(frozen=True)
class ProviderUser:
    name: str
    password: str
    email: str
    groups: tuple[str, ...]


USERS: Mapping[str, ProviderUser] = MappingProxyType(
    {
        u.name: u
        for u in (
            ProviderUser("alice", "alice-pass-7", "alice@example.test", ("ml-operators", "staff")),
            ProviderUser("bob", "bob-pass-8", "bob@example.test", ("ml-approvers",)),
            ProviderUser("carol", "carol-pass-9", "carol@example.test", ("ml-admins",)),
            ProviderUser("dave", "dave-pass-0", "dave@example.test", ("finance",)),
        )
    }
)
"""alice: operator; bob: approver; carol: admin and auditor; dave: in no mapped group."""


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    log: Path
    client_id: str = CLIENT_ID
    client_secret: str = field(default=CLIENT_SECRET, repr=False)
    public_client_id: str = PUBLIC_CLIENT_ID
    redirect_uri: str = REDIRECT_URI
    users: Mapping[str, ProviderUser] = field(default_factory=lambda: USERS)

    def env(self, *, redirect_uri: str | None = None) -> dict[str, str]:
        """The settings of a modelyard (``modelyard serve``) that logs in through here."""
        return {
            "MODELYARD_OIDC_ISSUER": self.issuer,
            "MODELYARD_OIDC_CLIENT_ID": self.client_id,
            "MODELYARD_OIDC_CLIENT_SECRET": self.client_secret,
            "MODELYARD_OIDC_REDIRECT_URL": redirect_uri or self.redirect_uri,
            "MODELYARD_OIDC_ROLE_MAP": ROLE_MAP,
        }

    def config(self, *, public: bool = False) -> OidcConfig:
        """modelyard's configuration for this provider: the confidential console client, or
        (``public``) the public client without a secret that the CLI's device login uses."""
        return OidcConfig(
            issuer=self.issuer,
            client_id=self.public_client_id if public else self.client_id,
            client_secret=None if public else self.client_secret,
            redirect_url=self.redirect_uri,
            role_map=parse_role_map(ROLE_MAP),
        )


def _node_command(port: int, redirect_uris: Sequence[str]) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the OIDC tests need node (v20 or later) on PATH")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            f"the OIDC test provider is not installed in {PROVIDER_DIR}: "
            "run `npm ci --prefix tests/oidc`"
        )
    users = {
        u.name: {"password": u.password, "email": u.email, "groups": list(u.groups)}
        for u in USERS.values()
    }
    return [
        node,
        str(PROVIDER_DIR / "provider.mjs"),
        f"--port={port}",
        f"--users={json.dumps(users)}",
        f"--client-id={CLIENT_ID}",
        f"--client-secret={CLIENT_SECRET}",
        *(f"--redirect-uri={uri}" for uri in redirect_uris),
        f"--public-client-id={PUBLIC_CLIENT_ID}",
    ]


def _wait_for_issuer(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        text = log.read_text(errors="replace")
        if match := READY_LINE.search(text):
            return match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"the OIDC test provider exited ({proc.returncode}): {text[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the OIDC test provider printed no issuer: {text[-3000:]}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_provider(
    log: Path, *, port: int = 0, redirect_uris: Sequence[str] = (REDIRECT_URI,)
) -> Iterator[RunningProvider]:
    """The provider, for the length of a ``with`` block; its output goes to ``log``.

    ``redirect_uris``: where the confidential client may be sent back (the provider matches
    them exactly); the first is the one :meth:`RunningProvider.config` uses."""
    command = _node_command(port, redirect_uris)
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=PROVIDER_DIR)
    try:
        issuer = _wait_for_issuer(proc, log)
        yield RunningProvider(issuer=issuer, log=log, redirect_uri=redirect_uris[0])
    finally:
        _stop(proc)


# -- a browser on the provider's pages ----------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    id: str | None
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    """The forms of a page: their inputs, and named buttons (also those outside a form that
    point at it with ``form="ID"``, as the provider's device confirmation page has)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None
        self._outside: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(a.get("action", ""), a.get("method", "get").lower(), a.get("id"))
            self.forms.append(self._open)
        elif tag == "input" and a.get("name"):
            target = self._target(a)
            if target is not None:
                target.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            target = self._target(a)
            if target is not None:
                target.buttons[a["name"]] = a.get("value", "")
            elif a.get("form"):
                self._outside.append((a["form"], a["name"], a.get("value", "")))

    def _target(self, attrs: Mapping[str, str]) -> Form | None:
        owner = attrs.get("form")
        if owner:
            return next((f for f in self.forms if f.id == owner), None)
        return self._open

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def close(self) -> None:
        super().close()
        for owner, name, value in self._outside:
            for form in self.forms:
                if form.id == owner:
                    form.buttons[name] = value


def forms(page: httpx.Response) -> list[Form]:
    parser = _Forms()
    parser.feed(page.text)
    parser.close()
    return parser.forms


class Browser:
    """Cookies on, redirects followed by hand so that the way back to modelyard is seen."""

    def __init__(self, stop_at: str = REDIRECT_URI) -> None:
        self.stop_at = stop_at
        self.http = httpx.Client(follow_redirects=False, timeout=30, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _follow(self, response: httpx.Response) -> httpx.Response | dict[str, str]:
        """Follow redirects; the query of the redirect back to ``stop_at``, else the page."""
        for _ in range(20):
            if not response.is_redirect:
                return response
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(self.stop_at):
                return dict(parse_qsl(urlsplit(location).query))
            response = self.http.get(location)
        raise AssertionError("too many redirects")

    def open(self, url: str) -> httpx.Response | dict[str, str]:
        return self._follow(self.http.get(url))

    def submit(
        self,
        page: httpx.Response,
        *,
        action: str = "",
        fill: Mapping[str, str] | None = None,
        press: str | None = None,
    ) -> httpx.Response | dict[str, str]:
        """Submit the first form of ``page`` whose action contains ``action``, with its own
        fields, those in ``fill``, and the named button ``press``."""
        form = next((f for f in forms(page) if action in f.action), None)
        assert form is not None, f"no form with action {action!r} on {page.url}: {page.text}"
        data = {**form.fields, **(fill or {})}
        if press is not None:
            data[press] = form.buttons[press]
        target = urljoin(str(page.url), form.action)
        if form.method == "post":
            return self._follow(self.http.post(target, data=data))
        return self._follow(self.http.get(target, params=data))


def page(result: httpx.Response | dict[str, str]) -> httpx.Response:
    assert isinstance(result, httpx.Response), f"expected a page, got the redirect {result}"
    assert result.status_code == 200, f"{result.status_code} at {result.url}: {result.text}"
    return result


def redirect_query(result: httpx.Response | dict[str, str]) -> dict[str, str]:
    assert isinstance(result, dict), f"expected the redirect back, got {result.url}: {result.text}"
    return result


def log_in(
    browser: Browser, user: ProviderUser, start: httpx.Response | dict[str, str]
) -> httpx.Response | dict[str, str]:
    """Fill in the provider's login page with ``user``'s name and password, then consent."""
    login = page(start)
    assert "Sign-in" in login.text
    after = browser.submit(
        login, action="/login", fill={"login": user.name, "password": user.password}
    )
    if isinstance(after, httpx.Response) and "Authorize" in after.text:
        return browser.submit(after, action="/confirm")
    return after


def authorize(browser: Browser, url: str, user: ProviderUser) -> dict[str, str]:
    """The whole browser login from modelyard's authorization URL to the redirect back."""
    return redirect_query(log_in(browser, user, browser.open(url)))


def approve_device(
    browser: Browser, device: DeviceLogin, user: ProviderUser, *, deny: bool = False
) -> httpx.Response:
    """Open the device's verification link, confirm (or abort) the code, log in, consent."""
    assert device.verification_uri_complete is not None
    # the provider answers the link with a form that its page script submits at once
    autosubmit = page(browser.open(device.verification_uri_complete))
    confirm = page(browser.submit(autosubmit))
    assert device.user_code in confirm.text
    if deny:
        return page(browser.submit(confirm, press="abort"))
    return page(log_in(browser, user, browser.submit(confirm)))
