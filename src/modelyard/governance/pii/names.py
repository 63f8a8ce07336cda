"""Person names without a statistical model: a gazetteer of given names plus honorifics.

A capitalised given name from ``given_names.txt`` followed by one or two capitalised words
(family-name particles like *van*, *de*, *von* allowed) is a person; so is a capitalised
word after an honorific (Mr, Dr, Frau, Mme, Sr., …). A given name alone counts unless it is
also a common word (*May*, *Will*, *Rose*). This needs no download at run time; its misses
(names outside the list, lower-case names) are measured in docs/privacy.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

from modelyard.governance.pii.entities import Entity

_WORD = r"[A-ZÀ-ÖØ-ÞŁŚŻŹĆŃ][a-zà-öø-ÿłśżźćńąęó'\u2019-]+"
_PARTICLE = r"(?:van der|van den|van|von|de la|de|del|della|di|da|du|le|la|ten|ter)"
_SURNAME = rf"(?:\s+(?:{_PARTICLE}\s+)?{_WORD}){{1,2}}"
_TITLE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Sig|Sig\.ra|Dhr|Mevr|"
    r"Pan|Pani|Dott|Dott\.ssa)\.?\s+"
    rf"({_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_WORD})?)"
)
_CANDIDATE = re.compile(rf"\b(?=({_WORD})({_SURNAME})?)")  # at every word: overlapping
_AMBIGUOUS = frozenset(
    [
        "May",
        "June",
        "April",
        "August",
        "Will",
        "Mark",
        "Rose",
        "Grace",
        "Faith",
        "Hope",
        "Joy",
        "Bill",
        "Frank",
        "Art",
        "Pat",
        "Sunny",
        "Summer",
        "Victoria",
        "Florence",
        "Paris",
        "Lane",
        "Dean",
        "Page",
        "Angel",
        "Sky",
        "Ray",
        "Jack",
        "Major",
        "Rich",
        "Iris",
        "Lily",
        "Amber",
        "Ruby",
        "Jade",
        "Holly",
        "Ivy",
        "Pearl",
        "Dawn",
        "Eve",
        "Sandy",
        "Chase",
        "Hunter",
        "Drew",
        "Gene",
        "Guy",
        "Lou",
        "Sue",
        "Kim",
        "Lee",
        "Max",
        "Sam",
        "Marine",
        "Marie-Claire",
        "Christian",
        "Paz",
        "Luz",
        "Dolores",
        "Consuelo",
        "Rosa",
        "Bella",
        "Stella",
        "Luna",
        "Don",
    ]
)


@cache
def given_names() -> frozenset[str]:
    text = resources.files("modelyard.governance.pii").joinpath("given_names.txt").read_text()
    return frozenset(
        w for line in text.splitlines() if not line.startswith("#") for w in line.split()
    )


def persons(text: str) -> Iterator[Entity]:
    names = given_names()
    for m in _TITLE.finditer(text):
        yield Entity("PERSON", m.start(1), m.end(1), m.group(1))
    for m in _CANDIDATE.finditer(text):
        first = m.group(1)
        if first not in names:
            continue
        if m.group(2):
            yield Entity("PERSON", m.start(1), m.end(2), m.group(1) + m.group(2))
        elif first not in _AMBIGUOUS:
            yield Entity("PERSON", m.start(1), m.end(1), first)
