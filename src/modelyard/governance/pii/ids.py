"""National identifiers and US social security numbers, scored rather than keyword-gated.

Every candidate has a *shape* (a pattern) and, where the identifier has one, a checksum
(``python-stdnum``). Its score is

    strength  — -log10 of the share of random strings of that shape the validator accepts
                (measured: a Steuer-ID checksum passes 0.3 % of random 11-digit strings → 2.5)
  + shape     — a separator layout or letter/digit mix typical of that identifier
                ("AB 12 34 56 C", "85.07.30-033.28", "123-45-6789") → 1.5 to 2.0
  + keyword   — a word naming an identifier within 60 characters before it → +2.0
  - negative  — a word saying the number is something else just before it ("order",
                "invoice", "ISBN", "tracking", "#") → -3.0

and a candidate is reported when the score reaches :data:`ACCEPT`. A keyword therefore only
lifts confidence: a bare Steuer-ID, PESEL, NIR, Belgian national number, personnummer or
NINO is found without one, while a bare 9-digit BSN (its eleven-test passes 9 % of random
numbers) or a plain 9-digit SSN (no checksum at all) still needs the word.

Detection looks at most :data:`LOOKBEHIND` characters to the left of a candidate and at one
character to its right, which the streaming redactor relies on (``stream.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum.be import nn as be_nn
from stdnum.de import idnr as de_idnr
from stdnum.dk import cpr as dk_cpr
from stdnum.ee import ik as ee_ik
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fi import hetu as fi_hetu
from stdnum.fr import nir as fr_nir
from stdnum.it import codicefiscale as it_cf
from stdnum.nl import bsn as nl_bsn
from stdnum.pl import pesel as pl_pesel
from stdnum.se import personnummer as se_pnr
from stdnum.us import ssn as us_ssn

from modelyard.governance.pii.entities import Entity

Validator = Callable[[str], bool]

ACCEPT = 1.7
"""The score a candidate needs: a bare shape whose checksum passes at most ~2 % of random
strings, or a weaker one with its keyword or its typical formatting."""
KEYWORD_LIFT = 2.0
NEGATIVE_DROP = 3.0
LOOKBEHIND = 60
"""How far to the left a keyword may stand (characters)."""

_GENERAL = (
    r"national id|national identification|national identity|identity number|identity card|"
    r"id number|id no|id nr|personal id|personal number|personal code|citizen number|"
    r"tax id|tax number|taxpayer|tin"
)
_KEYWORDS = {
    "US": r"ssn|social security|social sec",
    "GB": r"nino|national insurance|ni number|ni no|nin",
    "DE": r"steuer-?id|steuerliche|identifikationsnummer|idnr|steuernummer",
    "FR": r"nir|insee|sécurité sociale|securite sociale|carte vitale|numéro de sécu",
    "NL": r"bsn|burgerservicenummer|sofinummer|sofi-nummer",
    "ES": r"dni|nie|nif|documento|identidad",
    "IT": r"codice fiscale|cod\. fisc|c\.f\.|cf",
    "BE": r"rijksregister|registre national|numéro national|rijksregisternummer|nn",
    "PL": r"pesel",
    "SE": r"personnummer|personnr|pnr",
    "DK": r"cpr",
    "FI": r"hetu|henkilötunnus|personbeteckning",
    "EE": r"isikukood",
}
_NEGATIVE = re.compile(
    r"(?i)(?:\b(?:order|orders|invoice|inv|tracking|parcel|shipment|ticket|case|ref|"
    r"reference|serial|s/n|sn|part|sku|isbn|issn|ean|upc|gtin|doi|version|build|release|"
    r"model|batch|lot|po|transaction|txn|receipt|confirmation|booking|bestellung|rechnung|"
    r"commande|facture|pedido|factura|ordine|fattura|bestelling|factuur)\b[^\n]{0,16}|#\s*)$"
)
_LEFT = r"(?<![\w.,/+#-])"
_RIGHT = r"(?![\w-]|[.,/]\d)"


def _keywords(*countries: str) -> re.Pattern[str]:
    words = "|".join([_GENERAL, *(_KEYWORDS[c] for c in countries)])
    return re.compile(rf"(?i)(?<!\w)(?:{words})(?!\w)")


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    validators: tuple[Validator, ...]
    strength: float
    shape: float
    keywords: re.Pattern[str]
    type: str = "NATIONAL_ID"


def _rule(
    name: str,
    shape_re: str,
    validators: tuple[Validator, ...],
    strength: float,
    shape: float,
    keywords: re.Pattern[str],
    kind: str = "NATIONAL_ID",
) -> Rule:
    return Rule(
        name, re.compile(_LEFT + shape_re + _RIGHT), validators, strength, shape, keywords, kind
    )


def _nino(value: str) -> bool:
    compact = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", compact):
        return False
    first, second = compact[0], compact[1]
    return (
        first not in "DFIQUV"
        and second not in "DFIOQUV"
        and compact[:2] not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
    )


def _ssn(value: str) -> bool:
    return bool(us_ssn.is_valid(value.replace(" ", "-") if " " in value else value))


def _rules() -> tuple[Rule, ...]:
    us, gb, de, fr, nl = (_keywords(c) for c in ("US", "GB", "DE", "FR", "NL"))
    es, it, be, se = (_keywords(c) for c in ("ES", "IT", "BE", "SE"))
    dk, fi = (_keywords(c) for c in ("DK", "FI"))
    eleven = _keywords("DE", "BE", "PL", "EE")
    return (
        _rule("US SSN", r"\d{3}-\d{2}-\d{4}", (_ssn,), 0.05, 2.0, us, "US_SSN"),
        _rule("US SSN", r"\d{3} \d{2} \d{4}", (_ssn,), 0.05, 1.7, us, "US_SSN"),
        _rule("US SSN", r"\d{9}", (_ssn,), 0.05, 0.0, _keywords("US"), "US_SSN"),
        _rule("GB NINO", r"[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d]", (_nino,), 1.1, 1.5, gb),
        _rule("ES DNI", r"\d{8}-?[A-Z]", (es_dni.is_valid,), 1.36, 1.5, es),
        _rule("ES NIE", r"[XYZ]-?\d{7}-?[A-Z]", (es_nie.is_valid,), 1.36, 1.5, es),
        _rule(
            "IT codice fiscale",
            r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]",
            (it_cf.is_valid,),
            1.4,
            1.5,
            it,
        ),
        _rule("FI HETU", r"\d{6}[-+A]\d{3}[0-9A-Y]", (fi_hetu.is_valid,), 1.5, 1.5, fi),
        _rule("SE personnummer", r"\d{6}[-+]\d{4}", (se_pnr.is_valid,), 2.5, 1.5, se),
        _rule("SE personnummer", r"(?:19|20)\d{6}-\d{4}", (se_pnr.is_valid,), 2.5, 1.5, se),
        _rule("SE personnummer", r"(?:19|20)\d{10}", (se_pnr.is_valid,), 2.5, 0.0, se),
        _rule("SE personnummer", r"\d{10}", (se_pnr.is_valid,), 2.5, 0.0, se),
        _rule("DK CPR", r"\d{6}-\d{4}", (dk_cpr.is_valid,), 1.5, 1.5, dk),
        _rule(
            "BE national number",
            r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}",
            (be_nn.is_valid,),
            2.85,
            1.5,
            be,
        ),
        _rule("BE national number", r"\d{6} \d{3} \d{2}", (be_nn.is_valid,), 2.85, 1.5, be),
        _rule("DE Steuer-ID", r"\d{2} \d{3} \d{3} \d{3}", (de_idnr.is_valid,), 2.5, 1.5, de),
        _rule(
            "11 digits",
            r"\d{11}",
            (de_idnr.is_valid, be_nn.is_valid, ee_ik.is_valid, pl_pesel.is_valid),
            0.0,  # the strength comes from the validator that accepted it: see _STRENGTH
            0.0,
            eleven,
        ),
        _rule(
            "FR NIR",
            r"[12] \d{2} \d{2} (?:\d{2}|2A|2B) \d{3} \d{3} \d{2}",
            (fr_nir.is_valid,),
            2.0,
            1.5,
            fr,
        ),
        _rule("FR NIR", r"[12]\d{4}(?:\d{2}|2A|2B)\d{8}", (fr_nir.is_valid,), 2.0, 0.0, fr),
        _rule("NL BSN", r"\d{4}\.\d{2}\.\d{3}", (nl_bsn.is_valid,), 1.04, 1.5, nl),
        _rule("NL BSN", r"\d{3}\.\d{3}\.\d{3}", (nl_bsn.is_valid,), 1.04, 0.5, nl),
        _rule("NL BSN", r"\d{9}", (nl_bsn.is_valid,), 1.04, 0.0, nl),
    )


# For candidates several validators may accept: the strength of each (measured on random
# 11-digit strings: Steuer-ID 0.29 %, Belgian NN 0.14 %, Estonian 0.24 %, PESEL 1.7 %).
_STRENGTH: dict[Validator, float] = {
    de_idnr.is_valid: 2.5,
    be_nn.is_valid: 2.85,
    ee_ik.is_valid: 2.6,
    pl_pesel.is_valid: 1.77,
}


class IdDetector:
    """Built once per analyzer (the patterns compile once)."""

    def __init__(self) -> None:
        self.rules = _rules()

    def find(self, text: str) -> Iterator[Entity]:
        for rule in self.rules:
            for m in rule.pattern.finditer(text):
                score = self._score(rule, text, m)
                if score is not None and score >= ACCEPT:
                    yield Entity(rule.type, m.start(), m.end(), m.group())

    @staticmethod
    def _score(rule: Rule, text: str, m: re.Match[str]) -> float | None:
        accepted = [check for check in rule.validators if _valid(check, m.group())]
        if not accepted:
            return None
        strength = max(_STRENGTH.get(check, rule.strength) for check in accepted)
        before = text[max(0, m.start() - LOOKBEHIND) : m.start()]
        score = strength + rule.shape
        if rule.keywords.search(before):
            score += KEYWORD_LIFT
        if negative_before(text, m.start()):
            score -= NEGATIVE_DROP
        return score


def negative_before(text: str, start: int) -> bool:
    """Whether a word just before ``start`` says the number there is not personal data
    ("order", "invoice", "ISBN", "tracking", "#"...)."""
    return _NEGATIVE.search(text[max(0, start - 28) : start]) is not None


def _valid(check: Validator, value: str) -> bool:
    try:
        return bool(check(value))
    except (ValueError, TypeError, IndexError, KeyError):
        return False
