"""Policy as data: what a lifecycle transition requires, read from a file reviewed in git.

The policy lives in ``modelyard.toml`` (its ``[policy]`` table) or ``policy.yaml`` in the
home, or in a file named by ``--policy`` / ``MODELYARD_POLICY_FILE``. Example::

    [policy]
    licences = ["apache-2.0", "mit", "gemma", "llama3*"]

    [policy.stages.approved]
    licence = true
    intake = true
    four_eyes = true

    [policy.stages.production]
    licence = true
    intake = true
    four_eyes = true
    evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]
    bias = [{ probe = "bias:gender", max = 0.05 }]
    signature = true          # a model-signing signature by a key in signing_keys
    trial_load = true         # a recorded, successful trial load (`models trial-load`)

    signing_keys = ["keys/release.pub"]   # in [policy]; paths relative to this file

A stage without a section has no gates. With no policy file at all, a promotion into
``approved`` or ``production`` is refused unless the promoter overrides it explicitly
(``--override-no-policy``), which the audit log records. The first run writes the
commented default policy (:mod:`modelyard.governance.default_policy`) into the home.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelyard.catalog.lifecycle import Stage
from modelyard.config import Settings
from modelyard.errors import InvalidInput

DEFAULT_LICENCES = (
    "apache-2.0",
    "mit",
    "bsd-3-clause",
    "gemma",
    "llama3",
    "llama3.1",
    "llama3.2",
    "llama3.3",
)
POLICY_FILE_NAMES = ("modelyard.toml", "policy.yaml", "policy.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalRequirement(_Strict):
    suite: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    min: float

    @property
    def gate(self) -> str:
        return f"eval:{self.suite}/{self.metric}"


class BiasRequirement(_Strict):
    probe: str = Field(min_length=1)
    max: float = Field(ge=0)

    @property
    def gate(self) -> str:
        probe = self.probe if self.probe.startswith("bias:") else f"bias:{self.probe}"
        return probe

    @property
    def metric(self) -> str:
        return self.gate


class StageRequirements(_Strict):
    licence: bool = False
    intake: bool = False
    four_eyes: bool = False
    eval_evidence: bool = False
    """At least one finished eval run (any suite, any metric) of these exact bytes."""
    evals: tuple[EvalRequirement, ...] = ()
    bias: tuple[BiasRequirement, ...] = ()
    signature: bool = False
    """A valid signature by a trusted key (``signing_keys``); also checked at every load of a
    version at or past this stage."""
    trial_load: bool = False
    """A successful trial load of these exact bytes, recorded by ``models trial-load``."""


class Policy(_Strict):
    licences: tuple[str, ...] = DEFAULT_LICENCES
    stages: dict[Stage, StageRequirements] = Field(default_factory=dict)
    signing_keys: tuple[str, ...] = ()
    """PEM public keys whose signatures are trusted (relative paths: to the policy file)."""
    source: str | None = None
    """Where the policy came from (a path), or None when built in code."""
    missing: bool = False
    """No policy file was found: promotions into ``approved`` or ``production`` are refused
    unless overridden explicitly (the override is recorded in the audit log)."""
    sha256: str | None = None

    @field_validator("licences")
    @classmethod
    def _no_unknown(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        lowered = tuple(v.strip().lower() for v in value)
        if "unknown" in lowered or "*" in lowered:
            raise ValueError("a licence that is not known cannot be allowed ('unknown', '*')")
        return lowered

    @model_validator(mode="after")
    def _keys_for_signatures(self) -> Policy:
        if any(r.signature for r in self.stages.values()) and not self.signing_keys:
            raise ValueError("a stage requires a signature but signing_keys lists no key")
        return self

    def key_paths(self) -> list[Path]:
        """The trusted public keys, relative paths resolved against the policy file."""
        base = Path(self.source).parent if self.source else Path.cwd()
        return [p if (p := Path(key)).is_absolute() else base / p for key in self.signing_keys]

    def requirements(self, stage: Stage) -> StageRequirements:
        return self.stages.get(stage, StageRequirements())

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def find_policy_file(settings: Settings, path: Path | None = None) -> Path | None:
    """``path``, else MODELYARD_POLICY_FILE, else the first policy file in the home."""
    explicit = path or settings.policy_file
    if explicit is not None:
        if not explicit.is_file():
            raise InvalidInput(f"policy file not found: {explicit}", param="policy")
        return explicit
    for name in POLICY_FILE_NAMES:
        candidate = settings.home / name
        if candidate.is_file():
            return candidate
    return None


def load_policy(settings: Settings, path: Path | None = None) -> Policy:
    found = find_policy_file(settings, path)
    if found is None:
        return Policy(missing=True)
    return parse_policy(found.read_bytes(), source=str(found), yaml_file=found.suffix != ".toml")


def parse_policy(data: bytes, *, source: str, yaml_file: bool) -> Policy:
    """Parse and validate a policy document; a clear InvalidInput on anything wrong."""
    try:
        document: Any = yaml.safe_load(data) if yaml_file else tomllib.loads(data.decode())
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"policy file {source} is not valid: {exc}", param="policy") from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidInput(f"policy file {source}: expected a mapping at the top", param="policy")
    if not yaml_file or "policy" in document:
        document = document.get("policy", {})
    if not isinstance(document, dict):
        raise InvalidInput(f"policy file {source}: 'policy' must be a table", param="policy")
    digest = hashlib.sha256(data).hexdigest()
    try:
        return Policy.model_validate({**document, "source": source, "sha256": digest})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(f"policy file {source} is invalid: {problems}", param="policy") from exc
