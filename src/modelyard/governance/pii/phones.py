"""Phone numbers with libphonenumber (the ``phonenumbers`` package), strict validity.

A number glued to a word before it ("INV-2026-621600") or introduced by a word that says it
is something else ("order number 2635291630", see :func:`ids.negative_before`) is not a
phone number. A bare run of digits (no "+", space, dash, dot or parenthesis) is one only
with a word such as "phone", "call", "Tel." within :data:`LOOKBEHIND` characters before it:
counters, sizes and reference numbers are bare digit runs too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import phonenumbers

from modelyard.governance.pii.entities import Entity
from modelyard.governance.pii.ids import negative_before

LOOKBEHIND = 40
_PHONE_WORDS = re.compile(
    r"(?i)(?<!\w)(?:phone|telephone|tel|call|ring|mobile|cell|fax|whatsapp|sms|text me|"
    r"contact|reach|number|telefon|telefonnummer|handy|rufnummer|anrufen|téléphone|tél|"
    r"portable|appeler|teléfono|móvil|llamar|telefono|cellulare|chiamare|telefoon|mobiel|"
    r"bellen|telefonu|komórka|zadzwoń|mobilnummer|ringa)(?!\w)"
)


def phones(text: str, regions: Sequence[str]) -> Iterator[Entity]:
    seen: set[tuple[int, int]] = set()
    for region in regions:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID, max_tries=200
        )
        for match in matcher:
            span = (match.start, match.end)
            if span in seen:
                continue
            seen.add(span)
            glued = match.start > 0 and (
                text[match.start - 1].isalnum() or text[match.start - 1] in "-/#_"
            )
            if glued or negative_before(text, match.start):
                continue
            bare = match.raw_string.isdigit()
            before = text[max(0, match.start - LOOKBEHIND) : match.start]
            if not bare or _PHONE_WORDS.search(before):
                yield Entity("PHONE", match.start, match.end, match.raw_string)
