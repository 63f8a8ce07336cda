"""Detectors for identifiers with a structure or a checksum: e-mail, cards (Luhn and issuer
ranges), IBAN (ISO 13616 mod-97, any case, with or without spaces), IP addresses. National
IDs and US SSNs are in ``ids.py``.

Each looks at most :data:`LOOKBEHIND` characters to the left of what it finds and one
character to its right (the streaming redactor relies on this bound).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from stdnum import iban, luhn

from modelyard.governance.pii.entities import Entity

LOOKBEHIND = 12

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
_CARD = re.compile(r"(?<![\d+-])(?<!\+\d)(?:\d[ -]?){12,18}\d(?![\d-])")
# Two letters, two check digits, then up to 30 letters/digits in groups; any case.
_IBAN = re.compile(r"(?i)(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,32}")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![0-9A-Fa-f:])"
)
_VERSION = re.compile(r"(?i)(?:version|release|build|\bv)\s*$")

# Issuer ranges by length (ISO/IEC 7812 prefixes of the networks in use).
_CARD_ISSUERS: dict[int, re.Pattern[str]] = {
    13: re.compile(r"4"),
    14: re.compile(r"3(?:0[0-5]|[68])"),
    15: re.compile(r"3[47]|2131|1800"),
    16: re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|6(?:011|5|4[4-9]|2)|35"),
    17: re.compile(r"6[27]"),
    18: re.compile(r"6[27]"),
    19: re.compile(r"4|6(?:011|5|4[4-9]|2|7)|35"),
}


def emails(text: str) -> Iterator[Entity]:
    for m in _EMAIL.finditer(text):
        yield Entity("EMAIL", m.start(), m.end(), m.group())


def cards(text: str) -> Iterator[Entity]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        issuer = _CARD_ISSUERS.get(len(digits))
        if issuer is not None and issuer.match(digits) and luhn.is_valid(digits):
            yield Entity("CREDIT_CARD", m.start(), m.end(), m.group())


def ibans(text: str) -> Iterator[Entity]:
    position = 0
    while (m := _IBAN.search(text, position)) is not None:
        found = _longest_iban(m.group())
        if found:
            yield Entity("IBAN", m.start(), m.start() + len(found), found)
        # The candidate may have run on into the next IBAN ("… 0130 00 or de44 …"):
        # go on right after what was found, or after the candidate's first character.
        position = m.start() + (len(found) if found else 1)


def _longest_iban(candidate: str) -> str:
    """The longest prefix of ``candidate`` that is a valid IBAN and does not end inside a
    group ("…0130 00", not "…0130 0"); "" if none."""
    for end in range(len(candidate), 14, -1):
        piece = candidate[:end]
        if piece[-1] == " " or (end < len(candidate) and candidate[end] != " "):
            continue
        if iban.is_valid(piece.upper()):
            return piece
    return ""


def ip_addresses(text: str) -> Iterator[Entity]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            if _VERSION.search(text[max(0, m.start() - LOOKBEHIND) : m.start()]):
                continue  # "version 10.2.0.1", "v1.2.3.4": a version, not an address
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield Entity("IP_ADDRESS", m.start(), m.end(), m.group())
