"""Policy gates: each gate passing, failing (with its message) and missing evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Forbidden, InvalidInput
from modelyard.governance.policy import load_policy, parse_policy
from tests.lifecycle.helpers import add_run, add_version

POLICY = b"""
[policy]
licences = ["apache-2.0", "mit", "gemma", "llama3*"]

[policy.stages.approved]
licence = true
intake = true
four_eyes = true

[policy.stages.production]
licence = true
four_eyes = true
evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]
bias = [{ probe = "bias:gender", max = 0.05 }]
"""


def lifecycle(registry: Registry, settings: Settings, text: bytes = POLICY) -> Lifecycle:
    policy = parse_policy(text, source="test.toml", yaml_file=False)
    return Lifecycle(registry, settings, policy)


def gates(report_json: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {g["gate"]: (g["status"], g["detail"]) for g in report_json["gates"]}  # type: ignore[attr-defined, index]


def test_every_gate_passes_and_promotion_records_evidence(
    registry: Registry, settings: Settings
) -> None:
    version = add_version(registry, "m", created_by="alice")
    run = add_run(registry, version, score=0.85)
    bias = add_run(registry, version, kind="bias", suite=None, metric="bias:gender", score=0.02)
    lc = lifecycle(registry, settings)
    report = lc.check("m@1", "production", actor="bob")
    assert report.allowed, report.summary()
    result = gates(report.to_json())
    assert result["licence"] == ("passed", "licence apache-2.0 is allowed")
    assert result["intake"][0] == "passed" and "sha256 matches" in result["intake"][1]
    assert result["four-eyes"] == ("passed", "approver bob is neither the maker (alice)")
    assert result["eval:clinic-qa/contains"][0] == "passed"
    assert "0.85 >= 0.8" in result["eval:clinic-qa/contains"][1]
    assert result["bias:gender"] == ("passed", f"gap 0.02 <= 0.05 (run {bias})")
    promotion = lc.promote("m@1", "production", actor="bob", reason="pilot passed")
    assert [t.to_stage for t in promotion.transitions] == ["candidate", "approved", "production"]
    final = promotion.transitions[-1]
    assert set(final.evidence) == {run, bias}
    assert {g["gate"] for g in final.gates} == {"eval:clinic-qa/contains", "bias:gender"}
    approved = promotion.transitions[1]
    assert {g["gate"] for g in approved.gates} == {"licence", "intake", "four-eyes"}
    history = lc.history("m")
    assert [(t.from_stage, t.to_stage) for t in history] == [
        (None, "registered"),
        ("registered", "candidate"),
        ("candidate", "approved"),
        ("approved", "production"),
    ]
    assert history[-1].actor == "bob" and history[-1].reason == "pilot passed"


def test_failing_gates_explain_why_and_change_nothing(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    version = add_version(fast_registry, "m", created_by="alice", licence="cc-by-nc-4.0")
    add_run(fast_registry, version, score=0.5)
    add_run(fast_registry, version, kind="bias", suite=None, metric="bias:gender", score=0.2)
    lc = lifecycle(fast_registry, sqlite_settings)
    report = lc.check("m@1", "production", actor="alice")
    assert not report.allowed
    result = gates(report.to_json())
    assert result["licence"] == (
        "failed",
        "licence cc-by-nc-4.0 is not in the allow-list (apache-2.0, mit, gemma, llama3*)",
    )
    assert result["four-eyes"][0] == "failed"
    assert "alice made m@1" in result["four-eyes"][1]
    assert result["eval:clinic-qa/contains"][0] == "failed"
    assert "0.5 is below the minimum 0.8" in result["eval:clinic-qa/contains"][1]
    assert result["bias:gender"][0] == "failed"
    assert "gap 0.2 exceeds the bound 0.05" in result["bias:gender"][1]
    with pytest.raises(Forbidden, match="refused by policy") as refused:
        lc.promote("m@1", "production", actor="alice", reason="try")
    assert "licence" in refused.value.message and refused.value.code == "policy_refused"
    assert lc.stage("m@1")[1].stage.value == "registered"
    assert [t.to_stage for t in lc.history("m")] == ["registered"]


def test_missing_evidence_unknown_licence_and_other_bytes(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    version = add_version(fast_registry, "m", licence=None)
    add_run(fast_registry, version, score=0.99, digest="f" * 64)  # a run of other bytes
    add_run(fast_registry, version, score=0.99, status="running")  # not finished
    add_run(fast_registry, version, suite="other-suite", score=0.99)
    lc = lifecycle(fast_registry, sqlite_settings)
    result = gates(lc.check("m@1", "production", actor="bob").to_json())
    assert result["licence"][0] == "failed" and "licence unknown: refused" in result["licence"][1]
    status, detail = result["eval:clinic-qa/contains"]
    assert status == "missing"
    assert "no finished eval run of suite clinic-qa with metric contains" in detail
    assert result["bias:gender"][0] == "missing"


def test_four_eyes_counts_the_tuner(fast_registry: Registry, sqlite_settings: Settings) -> None:
    add_version(fast_registry, "m", created_by="alice")
    lc = lifecycle(fast_registry, sqlite_settings, b"[policy.stages.candidate]\nfour_eyes = true\n")
    with pytest.raises(Forbidden, match="alice made m@1"):
        lc.promote("m@1", "candidate", actor="alice", reason="self-review")
    assert lc.promote("m@1", "candidate", actor="carol", reason="review").transitions


def test_intake_gate_fails_on_tampered_blob(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    version = add_version(fast_registry, "m")
    path = fast_registry.blobs.path_for(version.digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    lc = lifecycle(fast_registry, sqlite_settings)
    result = gates(lc.check("m@1", "approved", actor="bob").to_json())
    assert result["intake"] == (
        "failed",
        "m.gguf: the stored bytes do not match their sha256 (corrupt or tampered)",
    )
    path.unlink()
    result = gates(lc.check("m@1", "approved", actor="bob").to_json())
    assert result["intake"] == ("failed", "m.gguf: the stored file is missing")


def test_intake_gate_refuses_unsafe_formats(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    add_version(fast_registry, "p", fmt="pt")
    lc = lifecycle(fast_registry, sqlite_settings)
    result = gates(lc.check("p@1", "approved", actor="bob").to_json())
    assert result["intake"] == ("failed", "format pt is not safe")


def test_policy_files_toml_yaml_and_errors(sqlite_settings: Settings, tmp_path: Path) -> None:
    assert load_policy(sqlite_settings).source is None  # no file: no gates
    (sqlite_settings.home / "modelyard.toml").write_bytes(POLICY)
    loaded = load_policy(sqlite_settings)
    assert loaded.source == str(sqlite_settings.home / "modelyard.toml")
    assert loaded.stages and loaded.sha256
    yaml_file = tmp_path / "policy.yaml"
    yaml_file.write_text(
        "licences: [mit]\nstages:\n  production:\n    evals:\n"
        "      - {suite: s, metric: exact, min: 0.5}\n"
    )
    from_yaml = load_policy(sqlite_settings, yaml_file)
    assert from_yaml.licences == ("mit",)
    assert from_yaml.stages["production"].evals[0].min == 0.5  # type: ignore[index]
    wrapped = tmp_path / "wrapped.yml"
    wrapped.write_text("policy:\n  stages:\n    approved: {four_eyes: true}\n")
    via_setting = sqlite_settings.model_copy(update={"policy_file": wrapped})
    assert load_policy(via_setting).stages["approved"].four_eyes  # type: ignore[index]
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy.stages.production]\nevals = [{ suite = 's', min = 'high' }]\n")
    with pytest.raises(InvalidInput, match=r"evals\.0\.metric: Field required") as error:
        load_policy(sqlite_settings, bad)
    assert "min: Input should be a valid number" in error.value.message
    bad.write_text("[policy.stages.shipping]\nlicence = true\n")
    with pytest.raises(InvalidInput, match=r"stages\.shipping"):
        load_policy(sqlite_settings, bad)
    bad.write_text("[policy]\nlicences = ['unknown']\n")
    with pytest.raises(InvalidInput, match="cannot be allowed"):
        load_policy(sqlite_settings, bad)
    bad.write_text("[policy\n")
    with pytest.raises(InvalidInput, match="is not valid"):
        load_policy(sqlite_settings, bad)
    with pytest.raises(InvalidInput, match="policy file not found"):
        load_policy(sqlite_settings, tmp_path / "missing.toml")
