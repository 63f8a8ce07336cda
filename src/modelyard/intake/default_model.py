"""The default model: Gemma 3 270M, the first of the bundled models (:mod:`.bundled`).

``modelyard models import --default`` imports it alone; ``/readyz`` checks that it is
registered and its blob intact.
"""

from __future__ import annotations

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.bundled import BundledModel, bundled_model, find_bundled, import_one
from modelyard.intake.importer import ProgressFactory

DEFAULT_MODEL_NAME = "gemma3-270m"


def default_spec() -> BundledModel:
    return bundled_model(DEFAULT_MODEL_NAME)


def find_default(registry: Registry) -> ModelVersion | None:
    return find_bundled(registry, default_spec())


def import_default(
    registry: Registry,
    settings: Settings,
    *,
    progress: ProgressFactory | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the default model; returns ``(version, created)`` (idempotent)."""
    return import_one(registry, settings, default_spec(), progress=progress)
