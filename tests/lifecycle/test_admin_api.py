"""The ``/admin`` lifecycle routes on a real server (uvicorn on a free port, the real app
factory), called over HTTP with admin and non-admin keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.gateway.app import create_app
from modelyard.governance.keys import KeyStore
from tests.harness import serve_in_thread
from tests.lifecycle.helpers import add_run, add_version

POLICY = """
[policy.stages.approved]
evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]

[policy.stages.production]
four_eyes = true
"""


@dataclass
class Admin:
    url: str
    admin: dict[str, str]
    user: dict[str, str]


@pytest.fixture
def api(fast_registry: Registry, sqlite_settings: Settings) -> Iterator[Admin]:
    (sqlite_settings.home / "modelyard.toml").write_text(POLICY)
    keys = KeyStore(fast_registry.db, sqlite_settings)
    _, admin_key = keys.create("ops", admin=True, created_by="tests", actor="tests")
    _, user_key = keys.create("app", created_by="tests", actor="tests")
    app = create_app(sqlite_settings)
    with serve_in_thread(app) as base:
        yield Admin(
            f"{base}/admin",
            {"Authorization": f"Bearer {admin_key}"},
            {"Authorization": f"Bearer {user_key}"},
        )


def test_admin_lifecycle_routes(api: Admin, fast_registry: Registry) -> None:
    mine = add_version(fast_registry, "m", created_by="key:ops")
    theirs = add_version(fast_registry, "m", created_by="alice")
    add_run(fast_registry, mine, score=0.9)
    add_run(fast_registry, theirs, score=0.9)
    with httpx.Client(timeout=30) as http:
        denied = http.get(f"{api.url}/aliases", headers=api.user)
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "admin_required"
        check = http.get(
            f"{api.url}/models/m@1/policy-check", params={"to": "production"}, headers=api.admin
        ).json()
        assert check["allowed"] is False and check["actor"] == "key:ops"
        refused = http.post(
            f"{api.url}/models/m@1/promote",
            json={"to": "production", "reason": "mine"},
            headers=api.admin,
        )
        assert refused.status_code == 403
        error = refused.json()["error"]
        # four-eyes takes two people who logged in: an admin key is not one
        assert error["code"] == "policy_refused"
        assert "key:ops is not an operator who logged in" in error["message"]
        done = http.post(
            f"{api.url}/models/m@2/promote",
            json={"to": "approved", "reason": "pilot passed"},
            headers=api.admin,
        )
        assert done.status_code == 200, done.text
        assert [t["to"] for t in done.json()["transitions"]][-1] == "approved"
        history = http.get(f"{api.url}/models/m/history", headers=api.admin).json()["data"]
        assert history[-1]["actor"] == "key:ops" and history[-1]["evidence"]
        bad = http.put(f"{api.url}/aliases/chat", json={"target": "m@2", "x": 1}, headers=api.admin)
        assert bad.status_code == 400 and "error" in bad.json()
        assert (
            http.put(f"{api.url}/aliases/chat", json={"target": "m@1"}, headers=api.admin).json()[
                "target"
            ]
            == "m@1"
        )
        moved = http.put(
            f"{api.url}/aliases/chat",
            json={"target": "m@2", "canary": "m@1", "weight": 5, "reason": "canary"},
            headers=api.admin,
        ).json()
        assert (moved["target"], moved["canary"], moved["canary_weight"]) == ("m@2", "m@1", 5)
        back = http.post(f"{api.url}/aliases/chat/rollback", headers=api.admin).json()
        assert back["target"] == "m@1" and back["canary"] is None
        shown = http.get(f"{api.url}/aliases/chat", headers=api.admin).json()
        assert [h["actor"] for h in shown["history"]] == ["key:ops", "key:ops", "key:ops"]
        added = http.post(
            f"{api.url}/advisories",
            json={"model": "m@2", "id": "CVE-2026-3", "severity": "high", "action": "block"},
            headers=api.admin,
        )
        assert added.status_code == 201 and added.json()["created_by"] == "key:ops"
        assert http.get(f"{api.url}/advisories", headers=api.admin).json()["data"][0]["id"] == (
            "CVE-2026-3"
        )
        withdrawn = http.delete(f"{api.url}/advisories/m@2/CVE-2026-3", headers=api.admin)
        assert withdrawn.json()["active"] is False
        card = http.get(f"{api.url}/models/m@2/card", headers=api.admin)
        assert card.headers["content-type"].startswith("text/markdown")
        assert "# Model card: m@2" in card.text and "pilot passed" in card.text
        manifest = http.get(f"{api.url}/deployment", headers=api.admin).json()
        assert sorted(manifest["models"]) == ["m@1", "m@2"]  # m@1: the alias's target
        assert manifest["aliases"]["chat"]["target"] == "m@1"
        assert http.delete(f"{api.url}/aliases/chat", headers=api.admin).json()["deleted"]
        missing = http.post(f"{api.url}/aliases/chat/rollback", headers=api.admin)
        assert missing.status_code == 404


def test_with_no_policy_file_the_admin_api_needs_the_recorded_override(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    add_version(fast_registry, "m", created_by="alice")
    _, admin_key = KeyStore(fast_registry.db, sqlite_settings).create(
        "ops", admin=True, created_by="tests", actor="tests"
    )
    headers = {"Authorization": f"Bearer {admin_key}"}
    body = {"to": "production", "reason": "no policy here yet"}
    with serve_in_thread(create_app(sqlite_settings)) as base, httpx.Client(timeout=30) as http:
        refused = http.post(f"{base}/admin/models/m@1/promote", json=body, headers=headers)
        assert refused.status_code == 403
        assert "--override-no-policy" in refused.json()["error"]["message"]
        done = http.post(
            f"{base}/admin/models/m@1/promote",
            json={**body, "override_no_policy": True},
            headers=headers,
        )
    assert done.status_code == 200, done.text
    gates = {g["gate"]: g for g in done.json()["gates"]}
    assert (
        gates["policy"]["status"] == "passed"
        and "overridden by key:ops" in gates["policy"]["detail"]
    )
