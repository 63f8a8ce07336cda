"""Model signing with OpenSSF model-signing (key mode): sign, store, verify, the policy gate,
and the check at load — real keys, real files, real processes for the commands."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.advisories import Advisories
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.registry import Registry
from modelyard.catalog.signing import Signatures
from modelyard.config import Settings
from modelyard.engines.load_check import LoadCheck
from modelyard.engines.worker_process import LoadRefused
from modelyard.errors import Forbidden, InvalidInput
from modelyard.governance.policy import load_policy
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.catalog.attest import flip_byte, key_pair, register_file
from tests.factories import write_tiny_gguf
from tests.harness import run_modelyard


@pytest.fixture
def local(sqlite_settings: Settings) -> Iterator[Registry]:
    db = Database(sqlite_settings.resolved_database_url)
    yield Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
    db.close()


def _policy(settings: Settings, public: Path) -> None:
    (settings.home / "modelyard.toml").write_text(
        f"""
[policy]
signing_keys = ["{public.name}"]

[policy.stages.production]
signature = true
""",
        encoding="utf-8",
    )
    (settings.home / public.name).write_bytes(public.read_bytes())


def _events(registry: Registry, ref: str) -> list[tuple[str, str]]:
    """The signing events about ``ref`` (its import is an event too)."""
    return [
        (r["details"]["event"], r["actor"])
        for r in iter_records(registry.db, Filter(kind="event"))
        if r["target"] == ref and r["details"]["event"] in ("model.sign", "model.verify")
    ]


@pytest.mark.slow
def test_sign_and_verify_commands_store_the_bundle_and_audit(
    tmp_path: Path, sqlite_settings: Settings, local: Registry
) -> None:
    model = register_file(local, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    private, public = key_pair(tmp_path, "release")
    _, stranger = key_pair(tmp_path, "stranger")
    home = sqlite_settings.home

    signed = run_modelyard(home, "models", "sign", model.ref, "--key", str(private), "--json")
    assert signed.returncode == 0, signed.stderr
    record = json.loads(signed.stdout)
    assert record["ref"] == "tiny@1" and record["model_digest"] == model.digest
    bundle = local.blobs.path_for(record["bundle_sha256"])  # the bundle is in the blob store
    statement = json.loads(bundle.read_text())
    assert statement["verificationMaterial"]["publicKey"]["hint"] == record["key_sha256"]

    good = run_modelyard(home, "models", "verify", model.ref, "--pubkey", str(public), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["ok"] is True
    other = run_modelyard(home, "models", "verify", model.ref, "--pubkey", str(stranger))
    assert other.returncode == 1
    assert "not signed by a trusted key" in other.stderr
    shown = json.loads(run_modelyard(home, "models", "show", model.ref, "--json").stdout)
    assert [s["key_sha256"] for s in shown["signatures"]] == [record["key_sha256"]]

    flip_byte(local.blobs.path_for(model.digest), model.size_bytes - 10)
    tampered = run_modelyard(home, "models", "verify", model.ref, "--pubkey", str(public))
    assert tampered.returncode == 1
    assert "do not match the signature" in tampered.stderr
    assert _events(local, model.ref) == [
        ("model.sign", record["signed_by"]),
        ("model.verify", record["signed_by"]),
        ("model.verify", record["signed_by"]),
        ("model.verify", record["signed_by"]),
    ]


def test_bad_keys_are_clear_errors_and_sign_nothing(
    tmp_path: Path, sqlite_settings: Settings, local: Registry
) -> None:
    model = register_file(local, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    signatures = Signatures(local, sqlite_settings)
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("hello")
    with pytest.raises(InvalidInput, match="not a PEM private key"):
        signatures.sign(model.ref, not_a_key, actor="alice")
    with pytest.raises(InvalidInput, match="cannot read private key"):
        signatures.sign(model.ref, tmp_path / "missing.pem", actor="alice")
    _, public = key_pair(tmp_path, "k")
    with pytest.raises(InvalidInput, match="not a PEM private key"):
        signatures.sign(model.ref, public, actor="alice")
    assert signatures.list(model.ref) == []
    assert _events(local, model.ref) == []


def test_policy_requires_a_trusted_signature_before_production(
    tmp_path: Path, settings: Settings, registry: Registry
) -> None:
    model = register_file(registry, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    private, public = key_pair(tmp_path, "release")
    rogue, _ = key_pair(tmp_path, "rogue")
    _policy(settings, public)
    lifecycle = Lifecycle(registry, settings, load_policy(settings))
    signatures = Signatures(registry, settings)

    with pytest.raises(Forbidden, match="signature: missing"):
        lifecycle.promote(model.ref, "production", actor="bob", reason="ship it")
    signatures.sign(model.ref, rogue, actor="mallory")
    with pytest.raises(Forbidden, match=r"signature: failed .*not signed by a trusted key"):
        lifecycle.promote(model.ref, "production", actor="bob", reason="ship it")
    assert lifecycle.stage(model.ref)[1].stage == Stage.REGISTERED

    signatures.sign(model.ref, private, actor="alice")
    promotion = lifecycle.promote(model.ref, "production", actor="bob", reason="ship it")
    gate = next(r for r in promotion.report.results if r.gate == "signature")
    assert gate.status == "passed" and "re-hashed" in gate.detail

    # A tampered stored file no longer matches its (valid) signature: the gate fails.
    lifecycle.promote(model.ref, "candidate", actor="bob", reason="back for review")
    flip_byte(registry.blobs.path_for(model.digest), 40)
    with pytest.raises(Forbidden, match="signature: failed"):
        lifecycle.promote(model.ref, "production", actor="bob", reason="again")


def test_a_policy_that_requires_signatures_needs_keys(sqlite_settings: Settings) -> None:
    (sqlite_settings.home / "modelyard.toml").write_text(
        "[policy.stages.production]\nsignature = true\n", encoding="utf-8"
    )
    with pytest.raises(InvalidInput, match="signing_keys lists no key"):
        load_policy(sqlite_settings)


def test_load_refuses_an_unsigned_production_version_when_the_policy_requires_one(
    tmp_path: Path, sqlite_settings: Settings, local: Registry
) -> None:
    model = register_file(local, write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    private, public = key_pair(tmp_path, "release")
    rogue, _ = key_pair(tmp_path, "rogue")
    _policy(sqlite_settings, public)
    check = LoadCheck(sqlite_settings)
    blob = local.blobs.path_for(model.digest)

    def load() -> None:
        fd = os.open(blob, os.O_RDONLY)
        try:
            check(model, fd)
        finally:
            os.close(fd)

    load()  # registered: the policy asks for a signature only from production on
    place(local, model.ref, Stage.PRODUCTION, actor="tests", reason="load check")
    Signatures(local, sqlite_settings).sign(model.ref, rogue, actor="mallory")
    with pytest.raises(LoadRefused, match="requires a signature at stage production"):
        load()
    advisories = Advisories(local).list(model.ref)
    assert [(a.id.split("-")[0], a.action, a.severity) for a in advisories] == [
        ("signature", "block", "critical")
    ]
    Signatures(local, sqlite_settings).sign(model.ref, private, actor="alice")
    load()  # a trusted signature over exactly these bytes
