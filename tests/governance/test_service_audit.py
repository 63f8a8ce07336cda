"""Every change is audited where it happens: in the service method, not in its caller.

The mutating service methods are enumerated, not listed by hand: every public function or
method of the service modules whose name says it writes (``create``, ``set``, ``remove``,
``import``…) must declare the events it writes (``@audited``) or be exempted here with a
reason. Each audited method is then called on a real store and must append exactly the
records it declares — kind, actor and subject — to a chain that still verifies; a call that
fails must append nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from modelyard.audit import AuditLog
from modelyard.audit.erasure import Erasure, erase_subject
from modelyard.audit.query import Filter, iter_records
from modelyard.audit.retention import purge_older_than
from modelyard.audit.verify import verify
from modelyard.catalog.advisories import SYSTEM_ACTOR, Advisories, raise_load_refusal
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.audit_events import EVENT_KINDS, audited_kinds, failure_kinds
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.proposals import Proposals
from modelyard.catalog.records import NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.catalog.signing import Signatures
from modelyard.config import Settings
from modelyard.deploy.apply import apply_manifest
from modelyard.deploy.manifest import build_manifest
from modelyard.engines.endpoint_registration import (
    EndpointRequest,
    register_endpoint,
    run_endpoint_trial,
)
from modelyard.engines.endpoint_store import EndpointRules
from modelyard.engines.trial_load import run_trial_load
from modelyard.errors import InvalidInput, ModelyardError
from modelyard.gateway.app import create_app
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.keys import KeyStore
from modelyard.governance.policy import Policy
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, Teams
from modelyard.identity import current_user
from modelyard.intake.bundled import BundledModel, import_one
from modelyard.intake.importer import execute_import, import_path, plan_import
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.denials import record_denial
from modelyard.operators.principal import Operator
from modelyard.operators.roles import Role
from modelyard.operators.sessions import OperatorSessions
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.audit.witnessing import rehash
from tests.catalog.attest import key_pair, register_file
from tests.factories import write_tiny_gguf
from tests.governance.clirun import run_cli
from tests.harness import serve_in_thread
from tests.remote_stub import StubServer

ACTOR = "auditor"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "governance.md"

SERVICE_PACKAGES = (
    "modelyard.catalog",
    "modelyard.governance",
    "modelyard.intake",
    "modelyard.deploy",
    "modelyard.audit",
    "modelyard.operators",
)
SERVICE_MODULES = (
    "modelyard.engines.trial_load",
    "modelyard.engines.endpoint_store",
    "modelyard.engines.endpoint_registration",
    "modelyard.engines.load_check",
    "modelyard.hardware.store",
    "modelyard.evaluate.runs",
    "modelyard.evaluate.probe_runs",
    "modelyard.quantize.service",
    "modelyard.tune.lora",
    "modelyard.tune.federated.run",
)
WRITES = re.compile(
    r"^(add|apply|commit|create|delete|drop|erase|execute|finish|grant|import|insert|move|place"
    r"|promote|purge|put|quantize|raise|record|register|remove|rename|reopen|revoke|rollback|run"
    r"|save|set|sign|store|touch|update|withdraw|write)(_|$)"
)
"""Names that say a callable writes (or may write) state."""

SESSION_STEP = "a step inside the caller's transaction; the service method that calls it records"
EXEMPT: dict[str, str] = {
    "modelyard.audit.log.record_event": "the append itself, which service methods call",
    "modelyard.audit.canonical.record_hash": "computes a record's hash; writes nothing",
    "modelyard.audit.checkpoints.record_bodies": "reads records for the witness; writes nothing",
    "modelyard.engines.trial_load.store_trial_load": "stores a trial load for its audited "
    "callers (trial_load, trial_load_endpoint), which declare model.trial_load",
    "modelyard.audit.checkpoints.sign_head": "a checkpoint: the witness's signed statement "
    "about the log, kept in its own journal",
    "modelyard.audit.witness.": "the witness signs the log's heads and purges; its journal "
    "is its own record",
    "modelyard.catalog.aliases.move_alias": SESSION_STEP + " alias.set / deploy.apply",
    "modelyard.catalog.aliases.remove_alias": SESSION_STEP + " alias.remove",
    "modelyard.catalog.aliases.rollback_target": "reads an alias's history; writes nothing",
    "modelyard.catalog.lifecycle.write_transition": SESSION_STEP
    + " lifecycle.promote / lifecycle.place / model.import / deploy.apply",
    "modelyard.catalog.registry.Registry.insert_version": SESSION_STEP
    + " deploy.apply, which names every version registered",
    "modelyard.governance.keys.insert_key": SESSION_STEP + " key.create",
    "modelyard.governance.teams.put_policy": SESSION_STEP + " key.create / key.policy.set",
    "modelyard.intake.bundled.import_bundled": "import_one for each bundled model (audited)",
    "modelyard.intake.default_model.import_default": "import_one for the default (audited)",
    "modelyard.quantize.service.quantize_version": "registers through execute_import (audited)",
    "modelyard.tune.lora.run_lora": "registers through execute_import (audited)",
    "modelyard.tune.lora.import_merged": "execute_import (audited) on a merged GGUF",
    "modelyard.tune.federated.run.run_federated": "registers through import_merged "
    "(execute_import, audited); the Flower run writes only its own run folder",
    "modelyard.tune.lora.run_dir_for": "computes a run folder's path; writes nothing",
    "modelyard.tune.lora.save_adapter": "writes the run's own adapter files; registering the "
    "result is execute_import's model.import",
    "modelyard.evaluate.runs.RunStore.": "evaluation runs are evidence, not governance state: "
    "rows with the model's digest and the data's SHA-256, named by the lifecycle.promote "
    "event of a promotion that relies on them",
    "modelyard.evaluate.probe_runs.run_probes": "bias runs: evidence, as RunStore",
    "modelyard.operators.cli_session.save_token": "the CLI's own login token file (0600); the "
    "login that issued it is operator.login",
    "modelyard.operators.sessions.revoke_all_in": SESSION_STEP + " operator.update",
    "modelyard.operators.oidc": "talks to the identity provider; the login it proves is "
    "recorded by OperatorAccounts.login_oidc",
    "modelyard.hardware.store.ProfileStore.": "hardware profiles are cost-model inputs "
    "(JSON files in the home), not governance state",
    "modelyard.engines.endpoint_store.EndpointRules.set": "calls allow or deny (audited)",
    "modelyard.engines.endpoint_store.Credentials.store_in": SESSION_STEP + " model.import "
    "(register_endpoint seals the key in the version's own transaction)",
}


def _service_modules() -> list[str]:
    names = list(SERVICE_MODULES)
    for package in SERVICE_PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [m.name for m in pkgutil.walk_packages(path, package + ".")]
    return sorted(n for n in set(names) if not n.endswith("__main__"))


def _public_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """``(qualified name, callable)`` of every public function and method the service
    modules define."""
    for name in _service_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if inspect.isfunction(value):
                yield f"{name}.{attr}", value
            elif inspect.isclass(value):
                for method_name, method in vars(value).items():
                    if not method_name.startswith("_") and inspect.isfunction(method):
                        yield f"{name}.{attr}.{method_name}", method


def _exemption(qualified: str) -> str | None:
    return next((why for key, why in EXEMPT.items() if qualified.startswith(key)), None)


def test_every_mutating_service_method_is_audited_or_exempt_with_a_reason() -> None:
    unaccounted = [
        qualified
        for qualified, fn in _public_callables()
        if WRITES.match(qualified.rsplit(".", 1)[1])
        and audited_kinds(fn) is None
        and _exemption(qualified) is None
    ]
    assert unaccounted == [], "audit these (@audited) or exempt them with a reason"


def test_exemptions_name_what_exists_and_is_not_audited() -> None:
    found = dict(_public_callables())
    for key in EXEMPT:
        matches = [q for q in found if q.startswith(key)]
        assert matches, f"stale exemption {key!r}"
        assert all(audited_kinds(found[q]) is None for q in matches), key


def test_every_event_kind_is_written_by_a_service_and_documented() -> None:
    declared = {
        k
        for _, fn in _public_callables()
        for k in (*(audited_kinds(fn) or ()), *(failure_kinds(fn) or ()))
    }
    assert declared == set(EVENT_KINDS)
    docs = DOCS.read_text(encoding="utf-8")
    assert [k for k in EVENT_KINDS if f"| `{k}` |" not in docs] == []


# -- each audited method, called for real ---------------------------------------------------


@dataclass
class Yard:
    settings: Settings
    registry: Registry
    tmp: Path
    saved: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.registry.db

    def keys(self) -> KeyStore:
        return KeyStore(self.db, self.settings)

    def teams(self) -> Teams:
        return Teams(self.db, self.settings)

    def policies(self) -> KeyPolicies:
        return KeyPolicies(self.db, self.settings)

    def aliases(self) -> Aliases:
        return Aliases(self.registry, self.settings)

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.registry, self.settings, Policy())

    def accounts(self) -> OperatorAccounts:
        return OperatorAccounts(self.db, self.settings)

    def proposals(self) -> Proposals:
        return Proposals(self.lifecycle())

    def advisories(self) -> Advisories:
        return Advisories(self.registry)

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.db, Filter()))

    def head(self) -> int:
        return max((r["seq"] for r in self.records()), default=0)

    def log_call(self, call: Callable[[AuditLog], Any]) -> Any:
        log = AuditLog(self.db, self.settings)
        try:
            return call(log)
        finally:
            log.close(checkpoint=False)


def _open(settings: Settings, tmp: Path) -> Iterator[Yard]:
    db = Database(settings.resolved_database_url)
    yard = Yard(settings, Registry(db, open_blob_store(settings), settings), tmp)
    try:
        yield yard
    finally:
        for thing in yard.saved.values():
            if isinstance(thing, StubServer):
                thing.stop()
        db.close()


@pytest.fixture
def yard(sqlite_settings: Settings, tmp_path: Path) -> Iterator[Yard]:
    yield from _open(sqlite_settings, tmp_path)


@pytest.fixture
def any_yard(settings: Settings, tmp_path: Path) -> Iterator[Yard]:
    yield from _open(settings, tmp_path)


def _version(y: Yard, name: str = "m", *, parent: str | None = None, by: str = "alice") -> str:
    path = y.tmp / f"{name}-{uuid.uuid4().hex}.bin"
    path.write_bytes(path.name.encode())  # unique bytes: a version of its own
    blob = y.registry.blobs.write_file(path)
    return y.registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format="gguf",
            size_bytes=blob.size_bytes,
            metadata={"architecture": "llama", "license": "apache-2.0"},
            files=(VersionFile(f"{name}.gguf", blob.sha256, blob.size_bytes),),
            source_path=f"test:{name}",
            created_by=by,
            parent=parent,
        )
    ).ref


def _tiny(y: Yard, name: str = "tiny") -> Path:
    return write_tiny_gguf(y.tmp / f"{name}.gguf")


def _signed(y: Yard) -> None:
    y.saved["ref"] = register_file(y.registry, _tiny(y), "tiny").ref
    y.saved["private"], y.saved["public"] = key_pair(y.tmp, "release")


def _aliased(y: Yard) -> None:
    _version(y, "m")
    _version(y, "m")
    y.aliases().set("chat", "m@1", actor="ops")


def _rolled(y: Yard) -> None:
    _aliased(y)
    y.aliases().set("chat", "m@2", actor="ops")
    y.aliases().set("solo", "m@1", actor="ops")


def _busy_team(y: Yard) -> None:
    y.teams().create("lab", actor="ops")
    y.teams().create("busy", actor="ops")
    y.policies().set("k", "busy", Scope(), actor="ops")


def _manifest(y: Yard) -> None:
    _version(y, "m")
    y.aliases().set("chat", "m@1", actor="ops")
    manifest = build_manifest(y.registry, y.settings, Policy())
    forged = json.loads(json.dumps(manifest))
    forged["models"]["m@1"]["digest"] = "0" * 64
    y.saved["manifest"], y.saved["forged"] = manifest, forged


def _old_records(y: Yard) -> None:
    """Three records, the first two back-dated 40 days."""
    from modelyard.audit.canonical import iso

    for name in ("a", "b", "c"):
        y.teams().create(name, actor="ops")
    old = iso(datetime.now(UTC) - timedelta(days=40))
    with y.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_records SET at = :at WHERE seq <= 2"), {"at": old})
    rehash(y.db)  # re-seal after back-dating, as an honest older log would be


def _bundle(y: Yard) -> None:
    path = _tiny(y, "bundle")
    spec = BundledModel(
        name="tinyb",
        title="a tiny GGUF",
        purpose="tests",
        package="modelyard-tests-none",
        licence="apache-2.0",
        kind="gguf",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        locate=lambda: (path,),
        file_name="tinyb.gguf",
    )
    y.saved["spec"], y.saved["forged"] = spec, replace(spec, sha256="0" * 64)


PASSWORD = "correct horse battery"


def _operator(y: Yard, name: str = "alice") -> None:
    y.accounts().create(name, {Role.OPERATOR}, password=PASSWORD, actor="ops")


def _logged_in(y: Yard) -> None:
    _operator(y)
    alice = y.accounts().login_password("alice", PASSWORD)
    y.saved["token"] = OperatorSessions(y.db, y.settings).issue(alice, "cli").token


def _raises_user_error(call: Callable[[], Any]) -> None:
    """Runs ``call``, which must raise KeyError (an unknown action), as a ModelyardError."""
    try:
        call()
    except KeyError as exc:
        raise InvalidInput(f"unknown action {exc}") from exc


def _proposed(y: Yard) -> None:
    _version(y, "m")
    y.saved["proposal"] = y.proposals().propose("m@1", "candidate", actor="alice", reason="go").id


def _upstream(y: Yard) -> None:
    """A stub OpenAI-compatible upstream on loopback, which the allow-list lets in."""
    y.saved["stub"] = StubServer().start()
    EndpointRules(y.db, y.settings).allow("127.0.0.1", actor="ops")


def _endpoint(y: Yard, actor: str = ACTOR) -> Any:
    request = EndpointRequest("remote", (y.saved["stub"].url,), "stub-model", None, "apache-2.0")
    return register_endpoint(y.registry, y.settings, request, actor=actor)


def _registered(y: Yard) -> None:
    _upstream(y)
    _endpoint(y, "ops")


def _imported(y: Yard) -> None:
    y.saved["path"] = _tiny(y)
    import_path(y.saved["path"], y.registry, y.settings, name="dup", created_by="ops")


@dataclass(frozen=True)
class Case:
    method: Callable[..., Any]
    """The audited callable: the kinds it declares are the records expected, in order."""
    act: Callable[[Yard], Any]
    subjects: Callable[[Any], tuple[str | None, ...]]
    """The records' ``target``s, from the call's result."""
    fail: Callable[[Yard], Any]
    """A call of the same method that fails (a ModelyardError) and must write nothing."""
    prepare: Callable[[Yard], Any] = lambda _y: None
    actor: str = ACTOR

    @property
    def id(self) -> str:
        return self.method.__qualname__


def _same(*subjects: str | None) -> Callable[[Any], tuple[str | None, ...]]:
    return lambda _result: subjects


CASES = [
    Case(
        KeyStore.create,
        prepare=lambda y: y.keys().create("dup", created_by="ops", actor="ops"),
        act=lambda y: y.keys().create("k1", created_by="ops", actor=ACTOR),
        subjects=_same("key:k1"),
        fail=lambda y: y.keys().create("dup", created_by="ops", actor=ACTOR),
    ),
    Case(
        KeyStore.revoke,
        prepare=lambda y: y.keys().create("k1", created_by="ops", actor="ops"),
        act=lambda y: y.keys().revoke("k1", actor=ACTOR),
        subjects=_same("key:k1"),
        fail=lambda y: y.keys().revoke("nobody", actor=ACTOR),
    ),
    Case(
        create_scoped_key,
        prepare=lambda y: y.teams().create("lab", actor="ops"),
        act=lambda y: create_scoped_key(
            y.db,
            y.settings,
            "k2",
            admin=False,
            team="lab",
            scope=Scope(),
            created_by="ops",
            actor=ACTOR,
        ),
        subjects=_same("key:k2"),
        fail=lambda y: create_scoped_key(
            y.db,
            y.settings,
            "k3",
            admin=False,
            team="nope",
            scope=Scope(),
            created_by="ops",
            actor=ACTOR,
        ),
    ),
    Case(
        Teams.create,
        prepare=lambda y: y.teams().create("dup", actor="ops"),
        act=lambda y: y.teams().create("lab", Scope(pii="redact"), actor=ACTOR),
        subjects=_same("team:lab"),
        fail=lambda y: y.teams().create("dup", actor=ACTOR),
    ),
    Case(
        Teams.update,
        prepare=lambda y: y.teams().create("lab", actor="ops"),
        act=lambda y: y.teams().update("lab", Scope(pii="block"), actor=ACTOR),
        subjects=_same("team:lab"),
        fail=lambda y: y.teams().update("nope", Scope(), actor=ACTOR),
    ),
    Case(
        Teams.delete,
        prepare=_busy_team,
        act=lambda y: y.teams().delete("lab", actor=ACTOR),
        subjects=_same("team:lab"),
        fail=lambda y: y.teams().delete("busy", actor=ACTOR),
    ),
    Case(
        KeyPolicies.set,
        act=lambda y: y.policies().set("k", None, Scope(pii="redact"), actor=ACTOR),
        subjects=_same("key:k"),
        fail=lambda y: y.policies().set("k", "nope", Scope(), actor=ACTOR),
    ),
    Case(
        KeyPolicies.delete,
        prepare=lambda y: y.policies().set("k", None, Scope(), actor="ops"),
        act=lambda y: y.policies().delete("k", actor=ACTOR),
        subjects=_same("key:k"),
        fail=lambda y: y.policies().delete("none", actor=ACTOR),
    ),
    Case(
        Registry.add_version,
        act=lambda y: _version(y, "m", by=ACTOR),
        subjects=_same("m@1"),
        fail=lambda y: _version(y, "m", parent="missing@1", by=ACTOR),
    ),
    Case(
        Registry.remove,
        prepare=_aliased,
        act=lambda y: y.registry.remove("m@2", actor=ACTOR),
        subjects=_same("m@2"),
        fail=lambda y: y.registry.remove("m@1", actor=ACTOR),
    ),
    Case(
        Registry.set_alias,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: y.registry.set_alias("chat", "m@1", actor=ACTOR),
        subjects=_same("alias:chat"),
        fail=lambda y: y.registry.set_alias("m", "m@1", actor=ACTOR),
    ),
    Case(
        Registry.delete_alias,
        prepare=_aliased,
        act=lambda y: y.registry.delete_alias("chat", actor=ACTOR),
        subjects=_same("alias:chat"),
        fail=lambda y: y.registry.delete_alias("nope", actor=ACTOR),
    ),
    Case(
        Aliases.set,
        prepare=_aliased,
        act=lambda y: y.aliases().set("chat", "m@2", canary="m@1", weight=10, actor=ACTOR),
        subjects=_same("alias:chat"),
        fail=lambda y: y.aliases().set("m", "m@1", actor=ACTOR),
    ),
    Case(
        Aliases.rollback,
        prepare=_rolled,
        act=lambda y: y.aliases().rollback("chat", actor=ACTOR),
        subjects=_same("alias:chat"),
        fail=lambda y: y.aliases().rollback("solo", actor=ACTOR),
    ),
    Case(
        Aliases.remove,
        prepare=_aliased,
        act=lambda y: y.aliases().remove("chat", actor=ACTOR, reason="done"),
        subjects=_same("alias:chat"),
        fail=lambda y: y.aliases().remove("nope", actor=ACTOR),
    ),
    Case(
        Lifecycle.promote,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: y.lifecycle().promote("m@1", "candidate", actor=ACTOR, reason="ok"),
        subjects=_same("m@1"),
        fail=lambda y: y.lifecycle().promote("m@1", "candidate", actor=ACTOR, reason=" "),
    ),
    Case(
        Lifecycle.set_intended_use,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: y.lifecycle().set_intended_use("m@1", "drafting replies", actor=ACTOR),
        subjects=_same("m@1"),
        fail=lambda y: y.lifecycle().set_intended_use("nope@1", "x", actor=ACTOR),
    ),
    Case(
        place,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: place(y.registry, "m@1", Stage.APPROVED, actor=ACTOR, reason="bundled"),
        subjects=_same("m@1"),
        fail=lambda y: place(y.registry, "nope@1", Stage.APPROVED, actor=ACTOR, reason="x"),
    ),
    Case(
        Advisories.add,
        prepare=lambda y: (
            _version(y, "m"),
            y.advisories().add("m@1", "CVE-0", severity="low", action="warn", actor="sec"),
        ),
        act=lambda y: y.advisories().add(
            "m@1", "CVE-1", severity="high", action="block", actor=ACTOR
        ),
        subjects=_same("m@1"),
        fail=lambda y: y.advisories().add(
            "m@1", "CVE-0", severity="low", action="warn", actor=ACTOR
        ),
    ),
    Case(
        Advisories.withdraw,
        prepare=lambda y: (
            _version(y, "m"),
            y.advisories().add("m@1", "CVE-1", severity="low", action="warn", actor="sec"),
        ),
        act=lambda y: y.advisories().withdraw("m@1", "CVE-1", actor=ACTOR),
        subjects=_same("m@1"),
        fail=lambda y: y.advisories().withdraw("m@1", "CVE-9", actor=ACTOR),
    ),
    Case(
        raise_load_refusal,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: raise_load_refusal(
            y.db, y.settings, "m@1", "integrity", "digest mismatch", now=datetime.now(UTC)
        ),
        subjects=_same("m@1"),
        fail=lambda y: raise_load_refusal(
            y.db, y.settings, "m@1", "bogus", "x", now=datetime.now(UTC)
        ),
        actor=SYSTEM_ACTOR,
    ),
    Case(
        Signatures.sign,
        prepare=_signed,
        act=lambda y: Signatures(y.registry, y.settings).sign(
            y.saved["ref"], y.saved["private"], actor=ACTOR
        ),
        subjects=_same("tiny@1"),
        fail=lambda y: Signatures(y.registry, y.settings).sign(
            y.saved["ref"], y.saved["public"], actor=ACTOR
        ),
    ),
    Case(
        Signatures.verify,
        prepare=lambda y: (
            _signed(y),
            Signatures(y.registry, y.settings).sign(y.saved["ref"], y.saved["private"], actor="o"),
        ),
        act=lambda y: Signatures(y.registry, y.settings).verify(
            y.saved["ref"], y.saved["public"], actor=ACTOR
        ),
        subjects=_same("tiny@1"),
        fail=lambda y: Signatures(y.registry, y.settings).verify(
            y.saved["ref"], y.tmp / "missing.pub", actor=ACTOR
        ),
    ),
    Case(
        run_trial_load,
        prepare=lambda y: register_file(y.registry, _tiny(y), "tiny"),
        act=lambda y: run_trial_load(y.registry, y.settings, "tiny@1", actor=ACTOR),
        subjects=_same("tiny@1"),
        fail=lambda y: run_trial_load(y.registry, y.settings, "nope@1", actor=ACTOR),
    ),
    Case(
        EndpointRules.allow,
        act=lambda y: EndpointRules(y.db, y.settings).allow("10.20.0.0/16", actor=ACTOR),
        subjects=_same("endpoint-rule:10.20.0.0/16"),
        fail=lambda y: EndpointRules(y.db, y.settings).allow("not a host", actor=ACTOR),
    ),
    Case(
        EndpointRules.deny,
        prepare=lambda y: EndpointRules(y.db, y.settings).allow("gpu-1.internal", actor="ops"),
        act=lambda y: EndpointRules(y.db, y.settings).deny("gpu-1.internal", actor=ACTOR),
        subjects=_same("endpoint-rule:gpu-1.internal"),
        fail=lambda y: EndpointRules(y.db, y.settings).deny("http://x/?q", actor=ACTOR),
    ),
    Case(
        register_endpoint,
        prepare=_upstream,
        act=_endpoint,
        subjects=_same("remote@1"),
        fail=_endpoint,  # the same URLs, model and identity again: refused
    ),
    Case(
        run_endpoint_trial,
        prepare=_registered,
        act=lambda y: run_endpoint_trial(y.registry, y.settings, "remote@1", actor=ACTOR),
        subjects=_same("remote@1"),
        fail=lambda y: run_endpoint_trial(y.registry, y.settings, "nope@1", actor=ACTOR),
    ),
    Case(
        apply_manifest,
        prepare=_manifest,
        act=lambda y: apply_manifest(
            y.registry, y.saved["manifest"], sources=[], actor=ACTOR, manifest_sha256="a" * 64
        ),
        subjects=_same("manifest:" + "a" * 12),
        fail=lambda y: apply_manifest(
            y.registry, y.saved["forged"], sources=[], actor=ACTOR, manifest_sha256="b" * 64
        ),
    ),
    Case(
        erase_subject,
        prepare=lambda y: y.keys().create("anna", created_by="ops", actor="ops"),
        act=lambda y: y.log_call(lambda log: erase_subject(log, "anna", actor=ACTOR)),
        subjects=lambda erasure: (f"subject:{erasure.subject_id}",),
        fail=lambda y: y.log_call(lambda log: erase_subject(log, "nobody", actor=ACTOR)),
    ),
    Case(
        purge_older_than,
        prepare=_old_records,
        act=lambda y: y.log_call(lambda log: purge_older_than(log, 30, actor=ACTOR)),
        subjects=_same(None),
        fail=lambda y: y.log_call(lambda log: purge_older_than(log, 0, actor=ACTOR)),
    ),
    Case(
        import_one,
        prepare=_bundle,
        act=lambda y: import_one(y.registry, y.settings, y.saved["spec"]),
        subjects=_same("tinyb@1", "tinyb@1"),
        fail=lambda y: import_one(y.registry, y.settings, y.saved["forged"]),
        actor=f"os:{current_user()}",
    ),
    Case(
        execute_import,
        prepare=_imported,
        act=lambda y: execute_import(
            plan_import(y.saved["path"], "t", y.settings), y.registry, created_by=ACTOR
        ),
        subjects=_same("t@1"),
        fail=lambda y: execute_import(
            plan_import(y.saved["path"], "dup", y.settings),
            y.registry,
            created_by=ACTOR,
            refuse_duplicate=True,
        ),
    ),
    Case(
        import_path,
        prepare=_imported,
        act=lambda y: import_path(
            y.saved["path"], y.registry, y.settings, name="t", created_by=ACTOR
        ),
        subjects=_same("t@1"),
        fail=lambda y: import_path(
            y.saved["path"], y.registry, y.settings, name="dup", created_by=ACTOR
        ),
    ),
]
CASES += [
    Case(
        OperatorAccounts.create,
        prepare=lambda y: _operator(y, "dup"),
        act=lambda y: y.accounts().create("bob", {Role.VIEWER}, password=PASSWORD, actor=ACTOR),
        subjects=_same("operator:bob"),
        fail=lambda y: y.accounts().create("dup", {Role.VIEWER}, password=None, actor=ACTOR),
    ),
    Case(
        OperatorAccounts.update,
        prepare=_operator,
        act=lambda y: y.accounts().update("alice", actor=ACTOR, roles={Role.APPROVER}),
        subjects=_same("operator:alice"),
        fail=lambda y: y.accounts().update("nobody", actor=ACTOR, disabled=True),
    ),
    Case(
        OperatorAccounts.set_password,
        prepare=_operator,
        act=lambda y: y.accounts().set_password("alice", PASSWORD + "!", actor=ACTOR),
        subjects=_same("operator:alice"),
        fail=lambda y: y.accounts().set_password("alice", "short", actor=ACTOR),
    ),
    Case(
        OperatorAccounts.enrol_totp,
        prepare=_operator,
        act=lambda y: y.accounts().enrol_totp("alice", actor=ACTOR),
        subjects=_same("operator:alice"),
        fail=lambda y: y.accounts().enrol_totp("nobody", actor=ACTOR),
    ),
    Case(
        OperatorAccounts.remove_totp,
        prepare=_operator,
        act=lambda y: y.accounts().remove_totp("alice", actor=ACTOR),
        subjects=_same("operator:alice"),
        fail=lambda y: y.accounts().remove_totp("nobody", actor=ACTOR),
    ),
    Case(
        OperatorAccounts.login_password,
        prepare=_operator,
        act=lambda y: y.accounts().login_password("alice", PASSWORD),
        subjects=_same("operator:alice"),
        fail=lambda y: y.accounts().login_password("alice", "wrong password"),
        actor="alice",
    ),
    Case(
        OperatorAccounts.login_oidc,
        act=lambda y: y.accounts().login_oidc(
            "sub-1", "carol", frozenset({Role.VIEWER}), issuer="https://idp"
        ),
        subjects=_same("operator:carol"),
        fail=lambda y: y.accounts().login_oidc("sub-2", "dan", frozenset(), issuer="https://idp"),
        actor="carol",
    ),
    Case(
        OperatorAccounts.impersonate,
        act=lambda y: y.accounts().impersonate(
            "bob", by=Operator(ACTOR, frozenset({Role.ADMIN}), "local")
        ),
        subjects=_same("operator:bob"),
        fail=lambda y: y.accounts().impersonate(
            "bob", by=Operator(ACTOR, frozenset({Role.OPERATOR}), "local")
        ),
    ),
    Case(
        OperatorSessions.revoke,
        prepare=_logged_in,
        act=lambda y: OperatorSessions(y.db, y.settings).revoke(y.saved["token"]),
        subjects=_same("operator:alice"),
        fail=lambda y: OperatorSessions(y.db, y.settings).revoke(y.saved["token"]),
        actor="alice",
    ),
    Case(
        record_denial,
        act=lambda y: record_denial(
            y.db,
            y.settings,
            Operator(ACTOR, frozenset({Role.VIEWER}), "local"),
            "keys.manage",
            path="/console/keys/new",
            method="POST",
        ),
        subjects=_same("/console/keys/new"),
        fail=lambda y: _raises_user_error(
            lambda: record_denial(
                y.db,
                y.settings,
                Operator(ACTOR, frozenset({Role.VIEWER}), "local"),
                "no.such.action",
                path="/x",
                method="POST",
            )
        ),
    ),
    Case(
        Proposals.propose,
        prepare=lambda y: _version(y, "m"),
        act=lambda y: y.proposals().propose("m@1", "candidate", actor=ACTOR, reason="ready"),
        subjects=_same("m@1"),
        fail=lambda y: y.proposals().propose("m@1", "candidate", actor=ACTOR, reason=" "),
    ),
    Case(
        Proposals.approve,
        prepare=_proposed,
        act=lambda y: y.proposals().approve(y.saved["proposal"], actor=ACTOR, reason="ok"),
        subjects=_same("m@1", "m@1"),
        fail=lambda y: y.proposals().approve(y.saved["proposal"], actor=ACTOR, reason="again"),
    ),
    Case(
        Proposals.reject,
        prepare=_proposed,
        act=lambda y: y.proposals().reject(y.saved["proposal"], actor=ACTOR, reason="no"),
        subjects=_same("m@1"),
        fail=lambda y: y.proposals().reject(y.saved["proposal"], actor=ACTOR, reason="no"),
    ),
]
ON_POSTGRESQL = ("KeyStore.create", "Teams.delete", "Registry.add_version", "Lifecycle.promote")


def _event_kind(record: dict[str, Any]) -> str:
    return str(record["details"]["event"]) if record["kind"] == "event" else str(record["kind"])


def _check(case: Case, y: Yard) -> None:
    case.prepare(y)
    before = y.head()
    result = case.act(y)
    new = [r for r in y.records() if r["seq"] > before]
    assert [_event_kind(r) for r in new] == list(audited_kinds(case.method) or ())
    assert [r["actor"] for r in new] == [case.actor] * len(new)
    assert tuple(r["target"] for r in new) == case.subjects(result)
    report = verify(y.db, y.settings)
    assert report.ok, report.problem
    before = y.head()
    with pytest.raises(ModelyardError):
        case.fail(y)
    expected = list(failure_kinds(case.method) or ())  # a failed login is evidence too
    assert [_event_kind(r) for r in y.records() if r["seq"] > before] == expected
    assert verify(y.db, y.settings).ok


def test_every_audited_method_has_a_case() -> None:
    audited = {fn.__qualname__ for _, fn in _public_callables() if audited_kinds(fn)}
    assert audited == {case.id for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_an_audited_method_writes_what_it_declares(case: Case, yard: Yard) -> None:
    _check(case, yard)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("case", [c for c in CASES if c.id in ON_POSTGRESQL], ids=lambda c: c.id)
def test_on_postgresql_too(case: Case, any_yard: Yard) -> None:
    _check(case, any_yard)


def test_a_failed_key_creation_leaves_no_scope_behind(yard: Yard) -> None:
    with pytest.raises(ModelyardError):
        create_scoped_key(
            yard.db,
            yard.settings,
            "k",
            admin=False,
            team="nope",
            scope=Scope(),
            created_by="ops",
            actor=ACTOR,
        )
    assert yard.policies().get("k") is None and yard.records() == []


def test_erasure_covers_the_admin_events_about_a_person(yard: Yard) -> None:
    yard.keys().create("anna", created_by="ops", actor="ops")
    yard.keys().revoke("anna", actor="ops")
    erasure: Erasure = yard.log_call(lambda log: erase_subject(log, "anna", actor=ACTOR))
    assert erasure.records == {"event": [1, 2]}
    assert [r["target"] for r in yard.records()[:2]] == ["key:[erased]", "key:[erased]"]


# -- the commands and /admin go through the services -----------------------------------------------


def test_admin_api_changes_are_recorded_once_with_the_admin_key_as_actor(yard: Yard) -> None:
    _, admin = yard.keys().create("ops", admin=True, created_by="tests", actor="tests")
    headers = {"Authorization": f"Bearer {admin}"}
    with serve_in_thread(create_app(yard.settings)) as base, httpx.Client(timeout=30) as http:
        steps = [
            http.post(f"{base}/admin/teams", headers=headers, json={"name": "lab"}),
            http.post(f"{base}/admin/keys", headers=headers, json={"name": "bob", "team": "lab"}),
            http.post(f"{base}/admin/keys/bob/revoke", headers=headers),
            http.post(f"{base}/admin/keys", headers=headers, json={"name": "bob"}),  # 409
        ]
    assert [r.status_code for r in steps] == [201, 201, 200, 409]
    seen = [(_event_kind(r), r["actor"], r["target"]) for r in yard.records()]
    assert seen == [
        ("key.create", "tests", "key:ops"),
        ("team.create", "key:ops", "team:lab"),
        ("key.create", "key:ops", "key:bob"),
        ("key.revoke", "key:ops", "key:bob"),
    ]


def test_cli_changes_are_audited_with_the_os_user(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    run_cli(home, "teams", "create", "lab", "--pii", "redact")
    made = json.loads(run_cli(home, "keys", "create", "alice", "--team", "lab", "--json").stdout)
    run_cli(home, "models", "import", str(tiny), "--name", "tiny")
    run_cli(home, "models", "rm", "tiny@1")
    run_cli(home, "keys", "revoke", "alice")
    records = json.loads(run_cli(home, "audit", "list", "--kind", "event", "--json").stdout)
    seen = [(r["details"]["event"], r["actor"], r["target"]) for r in reversed(records)]
    user = f"os:{current_user()}"  # nobody logged in: the OS user, marked as such
    assert seen == [
        ("team.create", user, "team:lab"),
        ("key.create", user, "key:alice"),
        ("model.import", user, "tiny@1"),
        ("model.remove", user, "tiny@1"),
        ("key.revoke", user, "key:alice"),
    ]
    assert records[-2]["details"]["team"] == "lab"
    secret = made["key"].split("-", 2)[2]
    assert secret not in run_cli(home, "audit", "export", "--format", "jsonl").stdout
    assert run_cli(home, "audit", "verify").returncode == 0
