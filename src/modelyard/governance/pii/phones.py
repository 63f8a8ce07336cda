"""Phone numbers with libphonenumber (the ``phonenumbers`` package), strict validity."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import phonenumbers

from modelyard.governance.pii.entities import Entity


def phones(text: str, regions: Sequence[str]) -> Iterator[Entity]:
    seen: set[tuple[int, int]] = set()
    for region in regions:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID, max_tries=200
        )
        for match in matcher:
            span = (match.start, match.end)
            if span not in seen:
                seen.add(span)
                yield Entity("PHONE", match.start, match.end, match.raw_string)
