"""The knowledge base's schema: every fact carries the URL it came from."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Strict):
    gguf_architecture: str = Field(min_length=1)
    """The GGUF ``general.architecture`` string a conversion of this model carries."""
    parameters: int = Field(gt=0)
    active_parameters: int | None = Field(default=None, gt=0)
    """Parameters used per token (mixture-of-experts only)."""
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int | None = Field(default=None, gt=0)
    context_length: int = Field(gt=0)
    kv_bytes_per_token_f16: int | None = Field(default=None, gt=0)
    """Overrides the K+V formula where attention is not standard (latent attention)."""
    source: HttpUrl

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        if self.active_parameters is not None and self.active_parameters > self.parameters:
            raise ValueError("active_parameters exceeds parameters")
        if self.kv_heads > self.attention_heads:
            raise ValueError("kv_heads exceeds attention_heads")
        return self

    @property
    def parameters_per_token(self) -> int:
        return self.active_parameters or self.parameters


class Licence(_Strict):
    id: str = Field(min_length=1)
    name: str
    commercial: bool
    conditions: list[str] = Field(default_factory=list)
    source: HttpUrl


class Languages(_Strict):
    codes: list[str]
    """ISO 639-1 codes the model card names as supported."""
    many: bool = False
    """The card claims broad multilingual support without listing each language."""
    source: HttpUrl

    @field_validator("codes")
    @classmethod
    def _iso(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if len(code) != 2 or not code.isalpha() or not code.islower():
                raise ValueError(f"not an ISO 639-1 code: {code!r}")
        return codes


class Benchmark(_Strict):
    name: str
    score: float
    setting: str
    variant: str
    source: HttpUrl


class ModelEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    family: str
    vendor: str
    weights: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    """The publisher's repository of the original weights (owner/name)."""
    card: HttpUrl
    release_date: date
    release_source: HttpUrl
    architecture: Architecture
    licence: Licence
    languages: Languages
    tasks: list[str] = Field(min_length=1)
    benchmarks: list[Benchmark] = Field(default_factory=list)
    notes: str | None = None
    checked: list[str] = Field(default_factory=list)
    """Facts re-checked against the model's own card for this release."""
    unverified: list[str] = Field(default_factory=list)
    """Facts not re-checked (kept as recorded; correct them if the card says otherwise)."""

    def speaks(self, language: str) -> bool:
        return language in self.languages.codes or self.languages.many


class KnowledgeBase(_Strict):
    schema_version: int
    updated: date
    about: str
    models: list[ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> KnowledgeBase:
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate model ids")
        return self

    def get(self, model_id: str) -> ModelEntry | None:
        return next((m for m in self.models if m.id == model_id), None)
