"""``modelyard login --sso``: the device flow against a real OIDC provider, end to end.

The command runs as a user would run it, in a subprocess: it prints a link and a code, the
user approves it in a browser (here: the provider's real HTML pages, driven over HTTP), and
the command logs in with the roles the provider's groups map to."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelyard.operators.oidc_flows import DeviceLogin
from tests.oidc_provider import USERS, Browser, RunningProvider, approve_device, running_provider

pytestmark = pytest.mark.slow
PROMPT = re.compile(r"open (?P<url>http://\S+) and enter the code (?P<code>\S+)")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc") / "provider.log") as running:
        yield running


def modelyard_env(home: Path, provider: RunningProvider) -> dict[str, str]:
    env = {**os.environ, **provider.env(), "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env["MODELYARD_OIDC_CLI_CLIENT_ID"] = provider.public_client_id
    env.pop("MODELYARD_DATABASE_URL", None)
    env.pop("MODELYARD_OPERATOR_TOKEN", None)
    return env


def test_device_login_from_the_command_line(tmp_path: Path, provider: RunningProvider) -> None:
    env = modelyard_env(tmp_path / "home", provider)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "login", "--sso"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = PROMPT.search(line)
        assert match, line
        device = DeviceLogin(
            user_code=match["code"],
            verification_uri=match["url"],
            verification_uri_complete=match["url"],
            device_code="(held by the command)",
            interval=5,
            expires_in=600,
            created_at=datetime.now(UTC),
        )
        with Browser() as browser:
            assert "Sign-in Success" in approve_device(browser, device, USERS["bob"]).text
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "logged in as bob (approver)" in out
    whoami = subprocess.run(
        [sys.executable, "-m", "modelyard", "whoami", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(whoami.stdout) == {
        "actor": "bob",
        "name": "bob",
        "method": "oidc",
        "roles": ["approver"],
        "authenticated": True,
    }
