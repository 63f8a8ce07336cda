"""``modelyard models import --bundled``: the bundled models, idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import CLI

BUNDLED = ["gemma3-270m@1", "smollm2-135m@1", "minilm@1"]


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


@pytest.mark.slow
def test_import_bundled_imports_the_three_once(cli: CLI) -> None:
    first = json.loads(cli("models", "import", "--bundled", "--json").stdout)
    assert [(m["ref"], m["created"]) for m in first] == [(ref, True) for ref in BUNDLED]
    again = cli("models", "import", "--bundled")
    for ref in BUNDLED:
        assert f"already registered: {ref}" in again.stderr
    history = json.loads(cli("models", "history", "smollm2-135m", "--json").stdout)
    assert history[-1]["to"] == "production" and history[-1]["reason"] == "bundled model"


@pytest.mark.slow
def test_bundled_flags_are_checked(cli: CLI) -> None:
    both = cli("models", "import", "--default", "--bundled", ok=False)
    assert both.returncode == 1 and "give one of a PATH, --default or --bundled" in both.stderr
    named = cli("models", "import", "--bundled", "--name", "x", ok=False)
    assert named.returncode == 1 and "--name and --new-version apply to a PATH" in named.stderr
