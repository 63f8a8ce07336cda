"""Writes ``pii_recall_corpus.jsonl``: the labelled corpus for ``bench/pii_recall.py``.

Synthetic and deterministic (fixed seed): every value is generated here — IBANs, cards and
national IDs with correct checksums, invented names, addresses under ``example.*`` domains,
phone numbers built from libphonenumber's example numbers — so no real person's data is in
it. It concentrates on the forms real text uses and a keyword-driven detector misses:
lower-case and unspaced IBANs, national IDs without the word that names them, names outside
the built-in list next to structural cues (honorifics, "my name is", salutations, signature
blocks, a name before its own address), long e-mail addresses. Every labelled entity carries
a ``form`` so that recall can be read per form. Negative sentences (order numbers, ISBNs,
version strings, hex digests, dates, prices, tracking numbers, "Dear Customer") carry no
entity: whatever the detector reports in them is a false positive.

Each line: ``{"id", "lang", "text", "entities": [{"type", "form", "start", "end", "text"}]}``.

Run: ``.venv/bin/python tests/governance/data/make_recall_corpus.py``
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban as iban_check
from stdnum import luhn
from stdnum.de import idnr
from stdnum.it import codicefiscale
from stdnum.nl import bsn

OUT = Path(__file__).with_name("pii_recall_corpus.jsonl")
SLOT = re.compile(r"\{([a-z0-9_]+)\}")
RNG = random.Random(20261130)

# Invented name parts. The given names in GIVEN_LISTED are in the detector's list, those in
# GIVEN_UNLISTED are not (they must be found through a cue or not at all).
GIVEN_LISTED = ["Emily", "Daniel", "Anna", "Lukas", "Camille", "Giulia", "Piotr", "Erik", "Sara"]
GIVEN_UNLISTED = [
    "Siobhan",
    "Oluwaseun",
    "Thandiwe",
    "Aoife",
    "Bartholomew",
    "Xiadani",
    "Zbigniew",
    "Ingeborg",
    "Keziah",
    "Radomir",
    "Eulalia",
    "Torbjørn",
    "Wendeline",
    "Ignatius",
]
SURNAMES = [
    "Quillfeather",
    "Brannigan",
    "O'Rourke",
    "Vasquez-Ortega",
    "Lindqvist",
    "Zwetschgenbaum",
    "Kowalczyk",
    "Moreau",
    "Abernathy",
    "Szczepański",
    "Okonkwo",
    "van der Molen",
    "Fairweather",
    "Dupont-Lafarge",
]


def _digits(n: int) -> str:
    return "".join(RNG.choice(string.digits) for _ in range(n))


def person(listed: bool) -> str:
    given = RNG.choice(GIVEN_LISTED if listed else GIVEN_UNLISTED)
    return f"{given} {RNG.choice(SURNAMES)}"


def email(long: bool = False) -> str:
    given = RNG.choice(GIVEN_UNLISTED + GIVEN_LISTED).lower().replace("ø", "o")
    family = re.sub(r"[^a-z]", "", RNG.choice(SURNAMES).lower())
    local = f"{given}.{family}"
    if long:
        local += f".{RNG.choice(['accounts', 'billing', 'procurement'])}-{_digits(6)}"
        domain = f"{RNG.choice(['mail', 'corp', 'eu-west'])}.subsidiary-{_digits(3)}.example.com"
    else:
        domain = RNG.choice(["example.com", "example.org", "example.net", "mail.example.de"])
    return f"{local}@{domain}"


IBAN_SHAPES = {"DE": "8n10n", "NL": "4a10n", "GB": "4a14n", "BE": "12n", "FR": "10n11c2n"}


def _bban(shape: str) -> str:
    out = ""
    for count, kind in re.findall(r"(\d+)([anc])", shape):
        pool = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits}[kind]
        out += "".join(RNG.choice(pool) for _ in range(int(count)))
    return out


def iban(form: str) -> str:
    while True:
        country = RNG.choice(sorted(IBAN_SHAPES))
        bban = _bban(IBAN_SHAPES[country])
        check = iban_check.calc_check_digits(f"{country}00{bban}")
        value = f"{country}{check}{bban}"
        if iban_check.is_valid(value):
            break
    spaced = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return {
        "spaced": spaced,
        "unspaced": value,
        "lower_spaced": spaced.lower(),
        "lower_unspaced": value.lower(),
    }[form]


def card() -> str:
    prefix = RNG.choice(["4", "51", "55", "37", "6011"])
    length = 15 if prefix == "37" else 16
    body = prefix + _digits(length - len(prefix) - 1)
    number = body + luhn.calc_check_digit(body)
    if RNG.random() < 0.5:
        return number
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def ssn(form: str) -> str:
    area = RNG.choice([n for n in range(1, 900) if n != 666])
    value = f"{area:03d}{RNG.randint(1, 99):02d}{RNG.randint(1, 9999):04d}"
    sep = {"dashed": "-", "spaced": " ", "plain": ""}[form]
    return f"{value[:3]}{sep}{value[3:5]}{sep}{value[5:]}"


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def nino(form: str) -> str:
    while True:
        prefix = RNG.choice(NINO_FIRST) + RNG.choice(NINO_SECOND)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            break
    digits, suffix = _digits(6), RNG.choice("ABCD")
    if form == "spaced":
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{prefix}{digits}{suffix}"


def _sample(length: int, valid: Callable[[str], bool]) -> str:
    while True:
        value = _digits(length)
        if valid(value):
            return value


def steuer_id(form: str) -> str:
    value = _sample(11, idnr.is_valid)
    return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}" if form == "spaced" else value


def nir(form: str) -> str:
    body = (
        f"{RNG.choice('12')}{RNG.randint(40, 99):02d}{RNG.randint(1, 12):02d}"
        f"{RNG.randint(1, 95):02d}{RNG.randint(1, 999):03d}{RNG.randint(1, 999):03d}"
    )
    value = body + f"{97 - int(body) % 97:02d}"
    if form == "spaced":
        cuts = (0, 1, 3, 5, 7, 10, 13, 15)
        return " ".join(value[a:b] for a, b in itertools.pairwise(cuts))
    return value


def bsn_value(form: str) -> str:
    value = _sample(9, lambda v: v[0] != "0" and bsn.is_valid(v))
    return f"{value[:4]}.{value[4:6]}.{value[6:]}" if form == "dotted" else value


def dni(form: str) -> str:
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    if form == "nie":
        lead = RNG.choice("XYZ")
        digits = _digits(7)
        return f"{lead}{digits}{letters[int(str('XYZ'.index(lead)) + digits) % 23]}"
    digits = _digits(8)
    return f"{digits}{letters[int(digits) % 23]}"


def codice_fiscale() -> str:
    body = (
        "".join(RNG.choice(string.ascii_uppercase) for _ in range(6))
        + f"{RNG.randint(40, 99):02d}"
        + RNG.choice("ABCDEHLMPRST")
        + f"{RNG.choice([RNG.randint(1, 28), RNG.randint(41, 68)]):02d}"
        + RNG.choice("ADFHLMZ")
        + _digits(3)
    )
    return body + codicefiscale.calc_check_digit(body)


def belgian_nn(form: str) -> str:
    body = f"{RNG.randint(40, 99):02d}{RNG.randint(1, 12):02d}{RNG.randint(1, 28):02d}{_digits(3)}"
    value = body + f"{97 - int(body) % 97:02d}"
    if form == "dotted":
        return f"{value[:2]}.{value[2:4]}.{value[4:6]}-{value[6:9]}.{value[9:]}"
    return value


def pesel() -> str:
    body = f"{RNG.randint(40, 99):02d}{RNG.randint(1, 12):02d}{RNG.randint(1, 28):02d}{_digits(4)}"
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    check = (10 - sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 10) % 10
    return body + str(check)


def personnummer(form: str) -> str:
    year = RNG.randint(1940, 2005)
    body = f"{year % 100:02d}{RNG.randint(1, 12):02d}{RNG.randint(1, 28):02d}{_digits(3)}"
    value = body + luhn.calc_check_digit(body)
    if form == "long":
        return f"{year // 100}{value[:6]}-{value[6:]}"
    return f"{value[:6]}-{value[6:]}"


def phone(region: str, international: bool) -> str:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    while True:
        national = str(example.national_number)
        national = national[:-4] + _digits(4)
        number = phonenumbers.parse(national, region)
        if phonenumbers.is_valid_number(number):
            break
    fmt = (
        phonenumbers.PhoneNumberFormat.INTERNATIONAL
        if international
        else phonenumbers.PhoneNumberFormat.NATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def ipv4() -> str:
    return (
        f"{RNG.randint(11, 223)}.{RNG.randint(0, 255)}.{RNG.randint(0, 255)}.{RNG.randint(1, 254)}"
    )


def ipv6() -> str:
    return "2001:db8:" + ":".join(f"{RNG.randint(0, 65535):x}" for _ in range(3)) + "::1"


# slot name: (entity type, value maker)
SLOTS: dict[str, tuple[str, Callable[[], str]]] = {
    "name_listed": ("PERSON", lambda: person(True)),
    "name_unlisted": ("PERSON", lambda: person(False)),
    "given_unlisted": ("PERSON", lambda: RNG.choice(GIVEN_UNLISTED)),
    "surname": ("PERSON", lambda: RNG.choice(SURNAMES)),
    "email": ("EMAIL", email),
    "email_long": ("EMAIL", lambda: email(long=True)),
    "iban_spaced": ("IBAN", lambda: iban("spaced")),
    "iban_unspaced": ("IBAN", lambda: iban("unspaced")),
    "iban_lower_spaced": ("IBAN", lambda: iban("lower_spaced")),
    "iban_lower_unspaced": ("IBAN", lambda: iban("lower_unspaced")),
    "card": ("CREDIT_CARD", card),
    "ssn_dashed": ("US_SSN", lambda: ssn("dashed")),
    "ssn_spaced": ("US_SSN", lambda: ssn("spaced")),
    "ssn_plain": ("US_SSN", lambda: ssn("plain")),
    "nino_spaced": ("NATIONAL_ID", lambda: nino("spaced")),
    "nino_plain": ("NATIONAL_ID", lambda: nino("plain")),
    "steuerid_plain": ("NATIONAL_ID", lambda: steuer_id("plain")),
    "steuerid_spaced": ("NATIONAL_ID", lambda: steuer_id("spaced")),
    "nir_plain": ("NATIONAL_ID", lambda: nir("plain")),
    "nir_spaced": ("NATIONAL_ID", lambda: nir("spaced")),
    "bsn_plain": ("NATIONAL_ID", lambda: bsn_value("plain")),
    "bsn_dotted": ("NATIONAL_ID", lambda: bsn_value("dotted")),
    "dni": ("NATIONAL_ID", lambda: dni("dni")),
    "nie": ("NATIONAL_ID", lambda: dni("nie")),
    "codice": ("NATIONAL_ID", codice_fiscale),
    "bnn_plain": ("NATIONAL_ID", lambda: belgian_nn("plain")),
    "bnn_dotted": ("NATIONAL_ID", lambda: belgian_nn("dotted")),
    "pesel": ("NATIONAL_ID", pesel),
    "pnr_short": ("NATIONAL_ID", lambda: personnummer("short")),
    "pnr_long": ("NATIONAL_ID", lambda: personnummer("long")),
    "phone_us": ("PHONE", lambda: phone("US", RNG.random() < 0.5)),
    "phone_gb": ("PHONE", lambda: phone("GB", RNG.random() < 0.5)),
    "phone_de": ("PHONE", lambda: phone("DE", RNG.random() < 0.5)),
    "phone_fr": ("PHONE", lambda: phone("FR", True)),
    "ipv4": ("IP_ADDRESS", ipv4),
    "ipv6": ("IP_ADDRESS", ipv6),
}

# (language, template, how many sentences to make from it)
TEMPLATES: list[tuple[str, str, int]] = [
    # IBAN in the forms people paste
    ("en", "Please send the refund to {iban_spaced} by Friday.", 4),
    ("en", "My account is {iban_unspaced}, thanks.", 4),
    ("en", "wire it to {iban_lower_spaced} asap", 4),
    ("en", "iban: {iban_lower_unspaced}", 4),
    ("de", "Bitte überweisen Sie den Betrag auf {iban_unspaced}.", 3),
    ("nl", "Mijn rekeningnummer is {iban_lower_unspaced}, graag voor vrijdag.", 3),
    ("fr", "Virement sur le compte {iban_spaced} s'il vous plaît.", 3),
    # cards
    ("en", "Charge {card} for the annual plan.", 8),
    ("de", "Die Karte {card} wurde abgelehnt.", 4),
    # US SSN: with and without the keyword
    ("en", "Her number is {ssn_dashed} on the W-2.", 5),
    ("en", "Tax form lists {ssn_spaced} as the taxpayer's.", 6),
    ("en", "SSN {ssn_plain} was entered twice.", 4),
    ("en", "Applicant social security number: {ssn_dashed}.", 3),
    # UK NINO
    ("en", "Payroll has {nino_spaced} for the new starter.", 5),
    ("en", "NI number {nino_plain}, please update HR.", 4),
    ("en", "Use {nino_plain} when you fill in the form.", 3),
    # German Steuer-ID
    ("de", "Meine Steuer-ID lautet {steuerid_plain}.", 3),
    ("de", "Bitte tragen Sie {steuerid_plain} im Formular ein.", 4),
    ("de", "Für die Lohnabrechnung: {steuerid_spaced}.", 3),
    # French NIR
    ("fr", "Mon numéro de sécurité sociale est {nir_plain}.", 3),
    ("fr", "Carte Vitale : {nir_spaced}.", 3),
    ("fr", "Le dossier porte le numéro {nir_plain} depuis mars.", 3),
    # Dutch BSN
    ("nl", "Mijn BSN is {bsn_plain}.", 4),
    ("nl", "Burgerservicenummer {bsn_dotted} staat op de pas.", 3),
    ("nl", "Het nummer {bsn_plain} hoort bij de aanvraag.", 3),
    ("en", "Send {iban_lower_spaced} and {nino_spaced} to {email_long}.", 6),
    # Spanish DNI/NIE
    ("es", "Mi DNI es {dni} y vivo en Madrid.", 3),
    ("es", "Adjunto copia del documento {dni}.", 3),
    ("es", "El extranjero con {nie} firmó el contrato.", 4),
    # Italian codice fiscale
    ("it", "Il mio codice fiscale è {codice}.", 3),
    ("it", "Intestato a {codice}, pagamento ricevuto.", 4),
    # Belgian national number
    ("nl", "Rijksregisternummer {bnn_dotted}.", 3),
    ("fr", "Le numéro {bnn_plain} figure sur la carte.", 4),
    # Polish PESEL
    ("pl", "Mój PESEL to {pesel}.", 3),
    ("pl", "Proszę wpisać {pesel} w formularzu.", 4),
    # Swedish personnummer
    ("sv", "Mitt personnummer är {pnr_short}.", 3),
    ("sv", "Patienten {pnr_long} kallas till mottagningen.", 4),
    ("sv", "Ange {pnr_short} vid bokningen.", 3),
    # e-mail, long ones too
    ("en", "Write to {email} before the deadline.", 8),
    ("en", "Forward the invoices to {email_long} and keep me in copy.", 10),
    ("de", "Kontakt: {email_long}", 4),
    ("en", "CONTACT {email} FOR ACCESS", 2),
    # phones
    ("en", "Call me on {phone_us} after six.", 8),
    ("en", "My mobile is {phone_gb}.", 5),
    ("de", "Rufen Sie {phone_de} an.", 5),
    ("fr", "Mon portable : {phone_fr}.", 4),
    # IP addresses
    ("en", "Logins came from {ipv4} overnight.", 7),
    ("en", "The client at {ipv6} retried.", 5),
    # names: listed given names without a cue, unlisted names with one
    ("en", "I met {name_listed} at the conference.", 8),
    ("en", "Dear {name_unlisted},\nthank you for your letter.", 7),
    ("en", "Hi {given_unlisted}, the report is attached.", 4),
    ("en", "My name is {name_unlisted} and I need help with my bill.", 8),
    ("en", "Please ask Dr. {surname} about the results.", 4),
    ("en", "Ms {name_unlisted} will join the call.", 3),
    ("en", "Best regards,\n{name_unlisted}", 5),
    ("en", "Signed: {name_unlisted}", 3),
    ("en", "From: {name_unlisted} <{email}>", 4),
    ("en", "Thanks,\n{given_unlisted}", 3),
    ("de", "Sehr geehrte Frau {surname}, vielen Dank.", 3),
    ("de", "Mein Name ist {name_unlisted}.", 3),
    ("de", "Mit freundlichen Grüßen\n{name_unlisted}", 3),
    ("fr", "Je m'appelle {name_unlisted} et j'habite à Lyon.", 3),
    ("fr", "Bonjour Mme {surname}, votre dossier est prêt.", 3),
    ("es", "Me llamo {name_unlisted}.", 2),
    ("it", "Mi chiamo {name_unlisted}.", 2),
    ("nl", "Mijn naam is {name_unlisted}.", 2),
    ("pl", "Nazywam się {name_unlisted}.", 2),
    ("sv", "Jag heter {name_unlisted}.", 2),
    ("en", "The visitor, {name_unlisted}, waited in the lobby.", 4),  # no cue: a known miss
    # mixed sentences
    ("en", "Mr {name_unlisted} ({email}) paid with {card}.", 3),
    ("de", "Herr {name_listed}, IBAN {iban_spaced}, Tel. {phone_de}.", 3),
]

NEGATIVES: list[tuple[str, str]] = [
    ("en", "Order #{d9} ships on 2026-11-29."),
    ("en", "Your order number is {d10}; keep it for returns."),
    ("en", "Invoice INV-2026-{d6} is due on 29.11.2026."),
    ("en", "Tracking number 1Z{d3}AA1{d10} will be active tomorrow."),
    ("en", "ISBN 978-0-{d3}-{d5}-{d1} is the second edition."),
    ("en", "ISBN {isbn13} is out of print."),
    ("en", "Upgrade to version {ver} before Monday."),
    ("en", "Release v{ver} fixed the crash in 1.2.3.4000."),
    ("en", "The build hash is {hex40}."),
    ("en", "sha256:{hex64}"),
    ("en", "Commit {hex7} broke the nightly."),
    ("en", "The total is $1,{d3}.{d2} including VAT."),
    ("de", "Der Preis beträgt 1.{d3},{d2} € brutto."),
    ("fr", "Le billet coûte {d3},{d2} € et part à 12:30."),
    ("en", "Meeting on 11/29/2026 at 10:30 in room {d3}."),
    ("en", "The timestamp {epoch} marks the first event."),
    ("en", "Serial SN {d4}-{d4}-{d4} is registered."),
    ("en", "Part number {d11} is back in stock."),
    ("en", "Reference {d12} was used for the transfer."),
    ("en", "Dear Customer,\nyour parcel is on its way."),
    ("en", "Dear Sir or Madam, please find the report attached."),
    ("en", "Best regards,\nThe Support Team"),
    ("en", "Hi Team, the release is out."),
    ("en", "Thanks,\nCustomer Service"),
    ("de", "Sehr geehrte Damen und Herren, anbei die Rechnung."),
    ("de", "Mit freundlichen Grüßen\nIhr Kundenservice"),
    ("en", "Population grew by {d9} people over the decade."),
    ("en", "The file is {d10} bytes long."),
    ("en", "Coordinates 48.8566, 2.3522 mark the start."),
    ("en", "May we meet in June to mark the release?"),
    ("en", "The counter read {d11} at noon."),
    ("en", "Reading {d15} was logged by the sensor."),
    ("en", "Totals: {d9}, {d10} and {d12}."),
    ("en", "Dear Valued Customer, your plan renews soon."),
    ("en", "Hello World is the first program we write."),
    ("en", "Thanks,\nThe Billing Team"),
    ("en", "Hi All, quick update on the migration."),
    ("de", "Liebe Grüße aus Berlin"),
    ("fr", "Bonjour Madame, votre commande est prête."),
    ("en", "We flew from New York to Los Angeles via Salt Lake City."),
    ("en", "Visual Studio Code and Google Chrome were updated."),
    ("en", "I am Very Happy with the Premium Plan."),
]


def _negative_value(slot: str) -> str:
    if slot.startswith("d"):
        return _digits(int(slot[1:]))
    if slot.startswith("hex"):
        return "".join(RNG.choice("0123456789abcdef") for _ in range(int(slot[3:])))
    if slot == "ver":
        return f"{RNG.randint(1, 20)}.{RNG.randint(0, 40)}.{RNG.randint(0, 99)}"
    if slot == "epoch":
        return str(RNG.randint(1_600_000_000, 1_800_000_000))
    if slot == "isbn13":
        body = "978" + _digits(9)
        check = (10 - sum((3 if i % 2 else 1) * int(d) for i, d in enumerate(body)) % 10) % 10
        return body + str(check)
    raise ValueError(slot)


def _fill(template: str, make: Callable[[str], tuple[str, str] | None]) -> tuple[str, list[dict]]:
    text, entities, position = "", [], 0
    for m in SLOT.finditer(template):
        text += template[position : m.start()]
        slot = m.group(1)
        made = make(slot)
        if made is None:
            value = _negative_value(slot)
        else:
            kind, value = made
            entities.append(
                {"type": kind, "form": slot, "start": len(text), "end": len(text) + len(value)}
            )
        text += value
        position = m.end()
    text += template[position:]
    for entity in entities:
        entity["text"] = text[entity["start"] : entity["end"]]
    return text, entities


def build() -> list[dict]:
    rows: list[dict] = []
    for lang, template, count in TEMPLATES:
        for _ in range(count):
            text, entities = _fill(template, lambda s: (SLOTS[s][0], SLOTS[s][1]()))
            rows.append({"lang": lang, "text": text, "entities": entities})
    for lang, template in NEGATIVES:
        for _ in range(3):
            text, _none = _fill(template, lambda s: None)
            rows.append({"lang": lang, "text": text, "entities": []})
    return [{"id": i, **row} for i, row in enumerate(rows, 1)]


def main() -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in build()]
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(OUT)


if __name__ == "__main__":
    main()
