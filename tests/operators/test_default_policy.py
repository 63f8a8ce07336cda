"""Governed by default: the first run writes a commented policy whose gates bite."""

from __future__ import annotations

import tomllib
from pathlib import Path

from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.default_policy import DEFAULT_POLICY, MARKER, ensure_default_policy
from modelyard.governance.policy import load_policy
from tests.lifecycle.helpers import add_version


def test_the_first_run_writes_it_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    written = ensure_default_policy(settings)
    assert written == settings.home / "modelyard.toml"
    assert written.read_text() == DEFAULT_POLICY
    assert ensure_default_policy(settings) is None
    written.unlink()  # deleting it later means "no policy", not a fresh default
    assert ensure_default_policy(settings) is None
    assert load_policy(settings).missing


def test_an_existing_or_configured_policy_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "policy.yaml").write_text("policy: {}\n")
    assert ensure_default_policy(Settings(home=home)) is None
    assert (home / MARKER).exists() and not (home / "modelyard.toml").exists()
    other = tmp_path / "other"
    other.mkdir()
    assert ensure_default_policy(Settings(home=other, policy_file=home / "policy.yaml")) is None
    assert not (other / "modelyard.toml").exists()


def test_the_default_is_valid_and_every_gate_is_there(
    registry: Registry, sqlite_settings: Settings
) -> None:
    ensure_default_policy(sqlite_settings)
    policy = load_policy(sqlite_settings)
    assert not policy.missing and policy.source is not None
    production = policy.requirements("production")  # type: ignore[arg-type]
    assert production.licence and production.intake and production.trial_load
    assert production.eval_evidence and production.four_eyes
    assert [b.gate for b in production.bias] == ["bias:gender"]
    version = add_version(registry, "m", created_by="carol")
    report = Lifecycle(registry, sqlite_settings, policy).check(
        version.ref, "production", actor="bob"
    )
    gates = {r.gate: r.status for r in report.results}
    assert gates == {
        "licence": "passed",
        "intake": "passed",
        "four-eyes": "passed",
        "trial_load": "missing",
        "eval_evidence": "missing",
        "bias:gender": "missing",
    }
    assert not report.allowed


def test_the_bias_gate_switches_off_by_commenting_one_line(
    registry: Registry, sqlite_settings: Settings
) -> None:
    text = DEFAULT_POLICY.replace('\nbias = [{ probe = "gender"', '\n# bias = [{ probe = "gender"')
    assert text != DEFAULT_POLICY
    assert tomllib.loads(text)["policy"]["stages"]["production"].get("bias") is None
    (sqlite_settings.home / "modelyard.toml").write_text(text)
    policy = load_policy(sqlite_settings)
    version = add_version(registry, "m", created_by="carol")
    report = Lifecycle(registry, sqlite_settings, policy).check(
        version.ref, "production", actor="bob"
    )
    assert "bias:gender" not in {r.gate for r in report.results}
