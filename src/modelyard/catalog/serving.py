"""Which version answers when a client names a model: the single decision point for serving.

The gateway (and anything else that serves) calls :func:`resolve_for_serving` and nothing
else to turn a client's model name into a version. Lifecycle rules (stages, retirement,
advisories, canary splits, deprecation headers) belong here, so every server applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry


@dataclass(frozen=True)
class ServedModel:
    version: ModelVersion
    requested: str
    """The name the client used (a model name, ``NAME@N`` or an alias)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. ``Deprecation``, ``Sunset``)."""


def resolve_for_serving(registry: Registry, requested: str, *, pilot: bool = False) -> ServedModel:
    """Resolve a client's model name; raises NotFound/Gone/Unavailable/Forbidden when refused.

    ``pilot`` is true for keys allowed to use versions still being piloted.
    """
    return ServedModel(version=registry.resolve(requested), requested=requested)
