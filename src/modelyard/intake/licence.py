"""Find a model's licence: from GGUF metadata, a model card's front matter, or a LICENSE file.

Anything not recognised is recorded as ``unknown``: never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

UNKNOWN = "unknown"
MAX_READ = 256 * 1024

# (identifier, patterns that must all appear, case-insensitive) - most specific first.
_LICENCE_TEXT_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gemma", ("gemma terms of use",)),
    ("llama3.3", ("llama 3.3 community license",)),
    ("llama3.2", ("llama 3.2 community license",)),
    ("llama3.1", ("llama 3.1 community license",)),
    ("llama3", ("meta llama 3 community license",)),
    ("llama2", ("llama 2 community license",)),
    ("apache-2.0", ("apache license", "version 2.0")),
    ("mit", ("permission is hereby granted, free of charge",)),
    ("bsd-3-clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("cc-by-4.0", ("creative commons attribution 4.0",)),
    ("cc-by-nc-4.0", ("attribution-noncommercial 4.0",)),
)


def normalise(identifier: str | None) -> str:
    if not identifier:
        return UNKNOWN
    value = identifier.strip().lower()
    return value or UNKNOWN


def _from_card_text(text: str) -> str | None:
    """The ``license:`` field of a model card's YAML front matter, if any."""
    match = re.match(r"^---\s*\n(.*?)\n---", text, re.DOTALL)
    if not match:
        return None
    for line in match.group(1).splitlines():
        field = re.match(r"^licen[sc]e:\s*['\"]?([^'\"#\n]+?)['\"]?\s*$", line.strip())
        if field:
            return normalise(field.group(1))
    return None


def _from_licence_text(text: str) -> str | None:
    text = text[:MAX_READ].lower()
    text = re.sub(r"\s+", " ", text)
    for identifier, markers in _LICENCE_TEXT_MARKERS:
        if all(marker in text for marker in markers):
            return identifier
    return None


CARD_NAMES = ("README.md", "readme.md", "README")
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING", "USE_POLICY.md")


def detect_in_texts(texts: Mapping[str, str]) -> str:
    """The licence named by a model directory's text files (relpath → text already read)."""
    for card in CARD_NAMES:
        if card in texts and (found := _from_card_text(texts[card][:MAX_READ])):
            return found
    for name in LICENCE_NAMES:
        if name in texts and (found := _from_licence_text(texts[name])):
            return found
    return UNKNOWN
