"""The console in a real browser (Chromium): one afternoon of an organisation, in order.

alice (operator) signs in through the OIDC provider and proposes ``assistant@1`` for
production; bob (approver) approves it in a browser of his own, while alice's own attempt is
refused; alice moves an alias and rolls it back; carol (admin and auditor) creates a key,
sees it used, revokes it, verifies the audit log and finds everyone's records, and exports
usage as CSV. Then the keyboard-only walk of every main page, an expired session that keeps
what was typed, and a viewer whose forged POST is refused. Throughout, no page may log a
console error or a CSP violation.

The steps share the server and the browsers (module scope) and build on each other, so run
the module as a whole. With ``MODELYARD_SCREENSHOTS=docs/images`` the run also writes the
screenshots of docs/console.md.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from modelyard.web.pages.usage_report import CSV_COLUMNS
from tests.browser.keyboard import tab_to, tab_until
from tests.browser.pages import ConsoleErrors, People, Screenshots, Visitor
from tests.browser.seed import MODEL, OPERATOR, TEAM, VIEWER
from tests.browser.server import RunningConsole
from tests.web.conftest import audit_events

pytestmark = pytest.mark.slow

RECORDS_JS = """() => Array.from(document.querySelectorAll("#audit-records tbody tr"))
  .map((row) => Array.from(row.children).map((cell) => cell.textContent.trim()))"""
ALIAS = "chat"
KEY = "pilot-app"


@pytest.fixture(scope="module")
def people(
    console: RunningConsole, browser: Browser, console_errors: ConsoleErrors
) -> Iterator[People]:
    crowd = People(browser, console.url, console_errors)
    yield crowd
    crowd.close()


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    """What one step learns and a later one needs (the proposal's number…)."""
    return {}


def signed_in(people: People, console: RunningConsole, name: str) -> Visitor:
    """``name``'s browser, signed in through the provider the first time."""
    visitor = people[name]
    if "/console" not in visitor.page.url or "/console/login" in visitor.page.url:
        visitor.sign_in_with_provider(console.provider.users[name])
    return visitor


def api(console: RunningConsole, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=console.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False
    )


def nav(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name=label).click()


def expect_flash(page: Page, text: str) -> None:
    """The one-time message of the page a form led to (waits for that page)."""
    expect(page.locator(".flashes")).to_contain_text(text)


def test_an_operator_signs_in_with_sso_and_proposes_a_promotion(
    console: RunningConsole,
    people: People,
    facts: dict[str, Any],
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    alice = people["alice"]
    page = alice.page
    alice.goto("/console/models")  # no session yet: the login page, which remembers where
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Fmodels$"))
    expect(page.locator("#oidc-login")).to_have_text(re.compile(r"^Sign in with 127\.0\.0\.1"))
    screenshots.take(page, "login")

    alice.sign_in_with_provider(console.provider.users["alice"])
    expect(page).to_have_url(f"{console.url}/console/models")
    expect(page.locator("#operator-name")).to_have_text("alice")
    expect(page.locator(".whoami .roles")).to_have_text("(operator)")
    expect(page.locator("#catalog")).to_contain_text(f"{MODEL}-clinic-q8@1")

    page.get_by_role("link", name=f"{MODEL}@1", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{MODEL}@1")
    expect(page.locator(".lineage-wrap svg")).to_be_visible()
    expect(page.locator("#lineage-list")).to_contain_text(f"{MODEL}-clinic@1")

    page.locator("#propose-to").select_option("production")
    page.locator("#propose-reason").fill("Pilot passed: 0.9 on clinic-qa.")
    page.locator("#propose-submit").click()
    expect(page).to_have_url(re.compile(r"/console/approvals/\d+$"))
    expect_flash(page, f"Proposed {MODEL}@1 → production")
    expect(page.locator("#proposal-status")).to_have_text("pending")
    facts["proposal"] = int(page.url.rsplit("/", 1)[1])
    console_errors.assert_none()


def test_an_approver_approves_and_a_proposer_never_can(
    console: RunningConsole,
    people: People,
    facts: dict[str, Any],
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    proposal = facts["proposal"]
    alice = people["alice"]
    alice.goto(f"/console/approvals/{proposal}")
    expect(alice.page.locator("#approve-form")).to_have_count(0)
    expect(alice.page.locator("#withdraw-form")).to_be_visible()
    # the form is not there, so alice forges its POST, with her own valid CSRF token
    forged = alice.page.request.post(
        f"{console.url}/console/approvals/{proposal}/approve",
        form={"csrf_token": alice.csrf_token(), "reason": "my own work is fine"},
        max_redirects=0,
    )
    assert forged.status == 403 and "needs role" in forged.text()

    bob = signed_in(people, console, "bob")
    page = bob.page
    expect(page.locator(".whoami .roles")).to_have_text("(approver)")
    nav(page, "Approvals")
    row = page.locator("#pending-proposals tbody tr", has=page.locator(f"#proposal-{proposal}"))
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("Pilot passed")
    screenshots.take(page, "approvals")

    page.locator(f"#proposal-{proposal}").click()
    gates = page.locator("#gates")
    for gate in ("licence", "four-eyes", "clinic-qa"):
        expect(gates.locator("tr", has_text=gate).locator(".status")).to_have_text("passed")
    expect(page.locator("#gates-summary")).to_contain_text("All gates pass")
    screenshots.take(page, "approval")
    page.locator("#approve-reason").fill("Evidence is sound; the licence is on our list.")
    page.locator("#approve-submit").click()
    expect_flash(page, f"Approved: {MODEL}@1 is now production")
    expect(page.locator("#proposal-status")).to_have_text("approved")

    # carol is an admin, so she may approve, but not a proposal of her own
    carol = signed_in(people, console, "carol")
    carol.goto(f"/console/models/{MODEL}-clinic/1")
    carol.page.locator("#propose-to").select_option("production")
    carol.page.locator("#propose-reason").fill("Clinic pilot went well.")
    carol.page.locator("#propose-submit").click()
    gates = carol.page.locator("#gates")
    expect(gates.locator("tr", has_text="four-eyes").locator(".status")).to_have_text("failed")
    carol.page.locator("#approve-reason").fill("Approving my own.")
    with console_errors.expecting(403):
        carol.page.locator("#approve-submit").click()
        expect(carol.page.locator("#form-error")).to_contain_text("cannot approve it")
    expect(carol.page.locator("#proposal-status")).to_have_text("pending")
    console_errors.assert_none()


def test_an_alias_switches_and_rolls_back(
    console: RunningConsole,
    people: People,
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    alice = people["alice"]
    page = alice.page
    for target, reason in ((f"{MODEL}@1", "production version"), (f"{MODEL}@2", "try v2")):
        alice.goto("/console/aliases")
        page.locator("#alias-name").fill(ALIAS)
        page.locator("#alias-target").fill(target)
        page.locator("#alias-reason").fill(reason)
        page.locator("#set-alias-submit").click()
        expect(page).to_have_url(f"{console.url}/console/aliases/{ALIAS}")
        expect_flash(page, f"{ALIAS} → {target}.")
    nav(page, "Aliases")
    expect(page.locator(f"#alias-{ALIAS}")).to_contain_text(f"{MODEL}@2")

    page.locator(f"#alias-{ALIAS}").get_by_role("link", name=ALIAS).click()
    page.locator("#rollback-reason").fill("v2 is not approved yet")
    page.locator("#rollback-submit").click()  # console.js asks first; the dialog is accepted
    expect_flash(page, f"Rolled back: {ALIAS} → {MODEL}@1.")
    assert alice.dialogs == [f"Roll back alias {ALIAS}?"]
    expect(page.locator("#alias-history tbody tr").first).to_contain_text("rollback")
    nav(page, "Aliases")
    expect(page.locator(f"#alias-{ALIAS}")).to_contain_text(f"{MODEL}@1")

    with api(console, console.api_key) as client:
        models = client.get("/v1/models").json()["data"]
    served = {m["id"]: m["modelyard"]["version"] for m in models}
    assert served[ALIAS] == f"{MODEL}@1"
    console_errors.assert_none()


def test_an_admin_creates_a_key_and_revokes_it(
    console: RunningConsole,
    people: People,
    facts: dict[str, Any],
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    carol = signed_in(people, console, "carol")
    page = carol.page
    nav(page, "Keys")
    page.locator("#new-key").click()
    page.get_by_label("Name").fill(KEY)
    page.locator("#f-team").select_option(TEAM)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Key {KEY} created")
    expect(page.locator(".flashes")).to_contain_text("only time it is shown")
    secret = page.locator("#key-secret").input_value()
    assert len(secret) > 20

    with api(console, secret) as client:
        answer = client.post(
            "/v1/chat/completions",
            json={"model": ALIAS, "messages": [{"role": "user", "content": "Capital of France?"}]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]

        nav(page, "Keys")
        row = page.locator(f"#key-{KEY}")
        expect(row).to_contain_text(TEAM)
        expect(row).not_to_contain_text("never")  # used just now
        assert secret not in page.content()  # never shown again
        screenshots.take(page, "keys")

        row.get_by_role("link", name=f"Revoke key {KEY}").click()
        page.get_by_label(re.compile("I understand")).check()
        page.get_by_role("button", name="Revoke key").click()
        expect_flash(page, f"Revoked key {KEY}.")
        expect(page).to_have_url(f"{console.url}/console/keys")
        assert carol.dialogs[-1] == f"Revoke key {KEY}?"
        expect(page.locator(f"#key-{KEY}")).to_contain_text("revoked")

        refused = client.post(
            "/v1/chat/completions",
            json={"model": ALIAS, "messages": [{"role": "user", "content": "Still there?"}]},
        )
        assert refused.status_code == 401, refused.text

    nav(page, "Teams")
    expect(page.locator(f"#team-{TEAM}")).to_be_visible()
    screenshots.take(page, "teams")
    console_errors.assert_none()


def _records_of(page: Page, actor: str) -> set[tuple[str, str]]:
    """(event, actor) of the audit records the actor filter finds, typed and sent with Enter."""
    page.locator("#f-actor").fill(actor)
    page.locator("#f-actor").press("Enter")
    expect(page).to_have_url(re.compile(rf"/console/audit\?.*actor={actor}"))
    rows: list[list[str]] = page.evaluate(RECORDS_JS)
    return {(cells[2], cells[3]) for cells in rows}


def test_an_auditor_verifies_the_log_and_finds_everyone(
    console: RunningConsole,
    people: People,
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    carol = people["carol"]
    page = carol.page
    nav(page, "Audit")
    expect(page.locator("#audit-records")).to_be_visible()
    screenshots.take(page, "audit", at="#audit-records")
    page.get_by_role("navigation", name="Audit log").get_by_role("link", name="Verify").click()
    expect(page.locator("#verify-result")).to_contain_text("OK")
    screenshots.take(page, "audit-verify")

    page.get_by_role("navigation", name="Audit log").get_by_role("link", name="Records").click()
    expected = {
        "alice": {"operator.login", "lifecycle.propose", "access.denied", "alias.set"},
        "bob": {"operator.login", "lifecycle.approve", "lifecycle.promote"},
        "carol": {"operator.login", "key.create", "key.revoke", "lifecycle.propose"},
    }
    for actor, events in expected.items():
        found = _records_of(page, actor)
        assert {(event, actor) for event in events} <= found, found
    assert ("alias.rollback", "alice") in _records_of(page, "alice")
    console_errors.assert_none()


def test_usage_exports_as_csv_and_the_reports_show(
    console: RunningConsole,
    people: People,
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    carol = people["carol"]
    page = carol.page
    nav(page, "Usage")
    expect(page.locator("#usage-teams")).to_contain_text(TEAM)
    screenshots.take(page, "usage", at="#usage-period")
    with page.expect_download() as started:
        page.locator("#usage-csv").click()
    download = started.value
    assert re.fullmatch(r"modelyard-usage-[\d-]+\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(download.path().read_text())))
    with download.path().open() as handle:
        assert next(csv.reader(handle)) == list(CSV_COLUMNS)
    ours = [r for r in rows if r["team"] == TEAM]
    assert len(ours) == 1 and ours[0]["model"] == f"{MODEL}@1", rows
    assert ours[0]["requests"] == "1" and int(ours[0]["total_tokens"]) > 0

    nav(page, "Models")  # after the promotion and the alias
    expect(page.locator("#catalog tr", has_text=f"{MODEL}@1")).to_contain_text("production")
    screenshots.take(page, "models")
    page.get_by_role("link", name=f"{MODEL}@1", exact=True).click()
    expect(page.locator("#version-stage")).to_have_text("production")
    screenshots.take(page, "version")
    nav(page, "Evals")
    expect(page.locator("#eval-runs")).to_contain_text(f"{MODEL}@1")
    expect(page.locator("#eval-runs")).to_contain_text("0.900")
    screenshots.take(page, "evals")
    nav(page, "Advisories")
    expect(page.locator("#advisories")).to_contain_text("ADV-2026-001")
    screenshots.take(page, "advisories")
    nav(page, "Engines")
    expect(page.locator("#engine-status")).to_be_visible()
    screenshots.take(page, "engines")
    console_errors.assert_none()


MAIN_CONTROLS: dict[str, tuple[str, ...]] = {
    "/console": ('a[href="/console/approvals"]#pending-count',),
    "/console/models": (f'a[href="/console/models/{MODEL}/1"]',),
    "/console/approvals": ('a[href^="/console/approvals/"]',),
    "/console/aliases": (f'a[href="/console/aliases/{ALIAS}"]', "#alias-name", "#set-alias-submit"),
    "/console/advisories": ("#advisory-ref", "#advisory-severity", "#raise-submit"),
    "/console/engines": ("#engines-refresh",),
    "/console/keys": ("#new-key", f'a[aria-label="Limits of key {KEY}"]'),
    "/console/teams": ("#new-team",),
    "/console/audit": ("#f-kind", "#f-actor", "#audit-filters button"),
    "/console/usage": ("#f-since", "#usage-filters button", "#usage-csv"),
    "/console/evals": ("#f-model", "#eval-filters button"),
}
NAV = 'nav.site-nav a[href="/console/evals"]'


def test_every_main_page_works_with_the_keyboard_only(
    console: RunningConsole,
    people: People,
    console_errors: ConsoleErrors,
) -> None:
    page = people["carol"].page
    for path, controls in MAIN_CONTROLS.items():
        page.goto(f"{console.url}{path}")
        page.locator("body").focus()
        walk = tab_until(page, [".skip-link", NAV, *controls])
        assert walk.first() == "a #main Skip to content", walk.stops  # the skip link first
        assert walk.reached >= {".skip-link", NAV, *controls}, (path, walk.stops)
        assert not walk.unseen, f"focus not visible on {path}: {walk.unseen}"

    # the skip link jumps over the navigation; a link opens with Enter; a form sends with Enter
    page.goto(f"{console.url}/console/evals")
    page.locator("body").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    tab_to(page, "#f-model", limit=3)
    page.keyboard.type(MODEL)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/console/evals\?model={MODEL}&kind="))
    tab_to(page, f'a[href="/console/models/{MODEL}/1"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{console.url}/console/models/{MODEL}/1")
    console_errors.assert_none()


def test_an_expired_session_keeps_what_was_typed(
    console: RunningConsole,
    people: People,
    screenshots: Screenshots,
    console_errors: ConsoleErrors,
) -> None:
    olga = people[OPERATOR.name]
    page = olga.page
    olga.goto(f"/console/aliases/{ALIAS}")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    olga.sign_in_locally(OPERATOR)
    expect(page).to_have_url(f"{console.url}/console/aliases/{ALIAS}")

    page.locator("#canary-version").fill(f"{MODEL}@2")
    page.locator("#canary-weight").fill("5")
    page.locator("#canary-reason").fill("a little traffic to v2")
    idle = console.gateway.settings.operator_session_idle_minutes
    console.clock.advance(minutes=idle + 1)
    page.locator("#canary-reason").press("Enter")
    expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Faliases%2Fchat&draft="))

    olga.sign_in_locally(OPERATOR)
    expect(page).to_have_url(re.compile(rf"/console/aliases/{ALIAS}\?draft="))
    expect_flash(page, "Your session had expired")
    expect(page.locator("#canary-version")).to_have_value(f"{MODEL}@2")
    expect(page.locator("#canary-weight")).to_have_value("5")
    expect(page.locator("#canary-reason")).to_have_value("a little traffic to v2")
    page.locator("#canary-submit").click()
    expect_flash(page, f"canary {MODEL}@2 at 5%")
    expect(page.locator("#alias-canary-now")).to_contain_text(f"{MODEL}@2 at 5%")
    nav(page, "Aliases")
    screenshots.take(page, "aliases")
    console_errors.assert_none()


def test_a_viewer_cannot_forge_a_change(
    console: RunningConsole,
    people: People,
    console_errors: ConsoleErrors,
) -> None:
    vera = people[VIEWER.name]
    page = vera.page
    vera.goto("/console/login")
    vera.sign_in_locally(VIEWER)
    vera.goto(f"/console/aliases/{ALIAS}")
    expect(page.locator("#alias-target-now")).to_contain_text(f"{MODEL}@1")
    expect(page.locator("#rollback-form")).to_have_count(0)
    expect(page.locator("#canary-form")).to_have_count(0)

    rollback = f"{console.url}/console/aliases/{ALIAS}/rollback"
    forged = page.request.post(
        rollback, form={"csrf_token": vera.csrf_token(), "reason": "forged"}, max_redirects=0
    )
    assert forged.status == 403 and "needs role" in forged.text()
    without_token = page.request.post(rollback, form={"reason": "forged"}, max_redirects=0)
    assert without_token.status == 403

    denied = audit_events(console.app, "access.denied")
    assert denied[-1]["actor"] == VIEWER.name
    assert denied[-1]["details"]["action"] == "aliases.change"
    page.reload()
    expect(page.locator("#alias-canary-now")).to_contain_text(f"{MODEL}@2 at 5%")  # unchanged
    console_errors.assert_none()


def test_no_page_logged_an_error_or_a_csp_violation(console_errors: ConsoleErrors) -> None:
    assert console_errors.pages_watched >= 5
    console_errors.assert_none()
