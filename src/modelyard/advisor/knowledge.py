"""Load the shipped knowledge base (package data) or a user's own file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from modelyard.advisor.schema import KnowledgeBase
from modelyard.errors import InvalidInput


def load_knowledge_base(path: Path | None = None) -> KnowledgeBase:
    """The knowledge base at ``path``, or the one shipped in ``advisor/data/models.json``."""
    if path is None:
        text = resources.files("modelyard.advisor").joinpath("data/models.json").read_text("utf-8")
        origin = "the shipped knowledge base"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read knowledge base {path}: {exc.strerror}") from exc
        origin = str(path)
    try:
        return KnowledgeBase.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInput(f"{origin} is not a valid knowledge base: {exc}") from exc
