"""Detectors for identifiers with a structure or a checksum: e-mail, cards (Luhn), IBAN,
US SSN, EU national IDs (python-stdnum), IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from stdnum import iban, luhn
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

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b"
)
_CARD = re.compile(r"(?<![\d+-])(?<!\+\d)(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,32}")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_SSN_PLAIN = re.compile(r"(?i)\b(?:ssn|social security(?: number)?)\W{0,3}(\d{9})\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![0-9A-Fa-f:])"
)

_VERSION = re.compile(r"(?i)(?:version|release|build|\bv)\s*$")

Validator = Callable[[str], bool]

# Formats distinctive enough to accept on the checksum alone.
_DISTINCT_IDS: list[tuple[re.Pattern[str], list[Validator]]] = [
    (re.compile(r"\b\d{8}-?[A-Z]\b"), [es_dni.is_valid]),
    (re.compile(r"\b[XYZ]-?\d{7}-?[A-Z]\b"), [es_nie.is_valid]),
    (re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), [it_cf.is_valid]),
    (re.compile(r"\b\d{6}[-+A]\d{3}[0-9A-Y]\b"), [fi_hetu.is_valid]),
    (re.compile(r"(?<![\d-])\d{6}[-+]\d{4}(?![\d-])"), [se_pnr.is_valid, dk_cpr.is_valid]),
    (re.compile(r"\b\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}\b"), [be_nn.is_valid]),
    (
        re.compile(r"\b[12] \d{2} \d{2} (?:\d{2}|2A|2B) \d{3} \d{3}(?: \d{2})\b"),
        [fr_nir.is_valid],
    ),
]
# Plain digit strings: accepted only after a word that says what they are.
_CONTEXT = re.compile(
    r"(?i)(bsn|burgerservicenummer|pesel|steuer-?id|steuerliche|identifikationsnummer|idnr|"
    r"national id|national identification|personal id|id number|identity number|"
    r"n° de sécurité sociale|sécurité sociale|securite sociale|nir|insee|rijksregister|"
    r"registre national|isikukood|personal code|sofinummer)"
    r"[\s:=#.-]*(?:(?:is|ist|est|es|è|är|to|nr|no|n°|number|nummer|numer|numéro)[\s:.]*)?$"
)
_DIGITS = re.compile(r"(?<![\d-])\d(?:[ .]?\d){8,14}(?![\d-])")
_CONTEXT_IDS: list[Validator] = [
    nl_bsn.is_valid,
    pl_pesel.is_valid,
    de_idnr.is_valid,
    be_nn.is_valid,
    fr_nir.is_valid,
    ee_ik.is_valid,
]


def emails(text: str) -> Iterator[Entity]:
    for m in _EMAIL.finditer(text):
        yield Entity("EMAIL", m.start(), m.end(), m.group())


def cards(text: str) -> Iterator[Entity]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn.is_valid(digits):
            yield Entity("CREDIT_CARD", m.start(), m.end(), m.group())


def ibans(text: str) -> Iterator[Entity]:
    for m in _IBAN.finditer(text):
        candidate = m.group()
        for end in range(len(candidate), 14, -1):  # the longest prefix that is a valid IBAN
            piece = candidate[:end].rstrip()
            if piece and piece[-1] != " " and iban.is_valid(piece):
                yield Entity("IBAN", m.start(), m.start() + len(piece), piece)
                break


def ssns(text: str) -> Iterator[Entity]:
    for m in _SSN.finditer(text):
        if us_ssn.is_valid(m.group()):
            yield Entity("US_SSN", m.start(), m.end(), m.group())
    for m in _SSN_PLAIN.finditer(text):
        if us_ssn.is_valid(m.group(1)):
            yield Entity("US_SSN", m.start(1), m.end(1), m.group(1))


def national_ids(text: str) -> Iterator[Entity]:
    for pattern, validators in _DISTINCT_IDS:
        for m in pattern.finditer(text):
            if any(_valid(check, m.group()) for check in validators):
                yield Entity("NATIONAL_ID", m.start(), m.end(), m.group())
    for m in _DIGITS.finditer(text):
        if _CONTEXT.search(text[max(0, m.start() - 60) : m.start()]) and any(
            _valid(check, m.group()) for check in _CONTEXT_IDS
        ):
            yield Entity("NATIONAL_ID", m.start(), m.end(), m.group())


def _valid(check: Validator, value: str) -> bool:
    try:
        return bool(check(value))
    except (ValueError, TypeError, IndexError):
        return False


def ip_addresses(text: str) -> Iterator[Entity]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            if _VERSION.search(text[max(0, m.start() - 12) : m.start()]):
                continue  # "version 10.2.0.1", "v1.2.3.4": a version, not an address
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield Entity("IP_ADDRESS", m.start(), m.end(), m.group())
