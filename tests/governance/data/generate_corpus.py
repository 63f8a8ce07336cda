"""Writes ``pii_corpus.jsonl``: the labelled PII corpus (deterministic; seed fixed).

Each line: ``{"id", "lang", "text", "entities": [{"type", "start", "end", "text"}]}``.
Sentences come from templates in eight languages filled with values in those countries'
formats: phone numbers from libphonenumber's example numbers (national and international),
IBANs and cards with correct checksums, national IDs that python-stdnum accepts, given
names both inside and *outside* the detector's gazetteer (so that misses show), and
sentences with look-alikes and no PII at all (so that false positives show).

Run: ``.venv/bin/python tests/governance/data/generate_corpus.py``
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban as iban_check
from stdnum import luhn

OUT = Path(__file__).with_name("pii_corpus.jsonl")
SLOT = re.compile(r"\{(PERSON|EMAIL|PHONE|CREDIT_CARD|IBAN|US_SSN|NATIONAL_ID|IP_ADDRESS)\}")

NAMES = {
    "en": ["Emily Clarke", "James Whitfield", "Sarah Thompson", "Daniel Harris", "Olivia Bennett"],
    "de": ["Anna Schmidt", "Jürgen Weber", "Katrin Hoffmann", "Lukas Becker", "Monika Fischer"],
    "fr": [
        "Camille Dubois",
        "Julien Moreau",
        "Isabelle Laurent",
        "Antoine Lefèvre",
        "Chloé Martin",
    ],
    "es": ["Lucía García", "Javier Fernández", "Carmen López", "Pablo Martínez", "Elena Sánchez"],
    "it": ["Giulia Rossi", "Francesco Bianchi", "Chiara Romano", "Matteo Ricci", "Sara Colombo"],
    "nl": ["Sanne de Vries", "Jeroen van Dijk", "Femke Bakker", "Thijs Janssen", "Lotte Visser"],
    "pl": ["Katarzyna Nowak", "Piotr Kowalski", "Agnieszka Wiśniewska", "Tomasz Wójcik"],
    "sv": ["Erik Johansson", "Astrid Lindqvist", "Magnus Nilsson", "Elin Karlsson"],
}
# Real given names the gazetteer does not list: the detector is expected to miss these.
UNLISTED = [
    "Siobhan O'Connell",
    "Oluwaseun Adeyemi",
    "Thandiwe Nkosi",
    "Aoife Brennan",
    "Bartholomew Quigley",
    "Xiadani Ramírez",
    "Zbigniew Lewandowski",
    "Ingeborg Sørlie",
]
REGIONS = {
    "en": "US",
    "de": "DE",
    "fr": "FR",
    "es": "ES",
    "it": "IT",
    "nl": "NL",
    "pl": "PL",
    "sv": "SE",
}
IBAN_BBAN = {  # country: (length of BBAN, letters at the start)
    "DE": (18, 0),
    "FR": (23, 0),
    "ES": (20, 0),
    "IT": (23, 1),
    "NL": (14, 4),
    "GB": (18, 4),
    "BE": (12, 0),
    "PL": (24, 0),
}

TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Please call {PERSON} back on {PHONE} before noon.",
        "My e-mail is {EMAIL}, and my phone is {PHONE}.",
        "Charge the card {CREDIT_CARD} for the annual plan.",
        "The patient {PERSON} gave SSN {US_SSN} at admission.",
        "Wire the refund to {IBAN} by Friday.",
        "Login attempts came from {IP_ADDRESS} last night.",
        "Forward the contract to {PERSON} at {EMAIL}.",
        "Her social security number is {US_SSN}.",
        "Dr. {PERSON} will see you at 3 pm.",
        "The server at {IP_ADDRESS} stopped answering pings.",
    ],
    "de": [
        "Bitte rufen Sie {PERSON} unter {PHONE} zurück.",
        "Meine E-Mail-Adresse lautet {EMAIL}.",
        "Überweisen Sie den Betrag auf {IBAN}.",
        "Frau {PERSON} hat die Rechnung mit der Karte {CREDIT_CARD} bezahlt.",
        "Steuer-ID: {NATIONAL_ID}, bitte im Formular eintragen.",
        "Der Zugriff kam von der Adresse {IP_ADDRESS}.",
        "Herr {PERSON} ist telefonisch unter {PHONE} erreichbar.",
    ],
    "fr": [
        "Merci de contacter {PERSON} au {PHONE}.",
        "Mon adresse électronique est {EMAIL}.",
        "Le remboursement sera versé sur l'IBAN {IBAN}.",
        "Numéro de sécurité sociale : {NATIONAL_ID}.",
        "Mme {PERSON} a payé avec la carte {CREDIT_CARD}.",
        "La connexion provenait de {IP_ADDRESS}.",
    ],
    "es": [
        "Por favor, llame a {PERSON} al {PHONE}.",
        "Mi correo es {EMAIL} y mi DNI es {NATIONAL_ID}.",
        "Transfiera el importe a la cuenta {IBAN}.",
        "La Sra. {PERSON} pagó con la tarjeta {CREDIT_CARD}.",
        "El acceso se registró desde {IP_ADDRESS}.",
        "El NIE del solicitante es {NATIONAL_ID}.",
    ],
    "it": [
        "Chiamare {PERSON} al numero {PHONE}.",
        "Il codice fiscale di {PERSON} è {NATIONAL_ID}.",
        "Il bonifico va fatto su {IBAN}.",
        "La mia email è {EMAIL}.",
        "Pagamento con carta {CREDIT_CARD} rifiutato.",
    ],
    "nl": [
        "Bel {PERSON} terug op {PHONE}.",
        "Mijn BSN is {NATIONAL_ID}.",
        "Maak het bedrag over naar {IBAN}.",
        "Stuur de offerte naar {EMAIL}.",
        "Het verzoek kwam van {IP_ADDRESS}.",
    ],
    "pl": [
        "Proszę zadzwonić do {PERSON} pod numer {PHONE}.",
        "Numer PESEL: {NATIONAL_ID}.",
        "Przelew na konto {IBAN}.",
        "Mój adres e-mail to {EMAIL}.",
    ],
    "sv": [
        "Ring {PERSON} på {PHONE}.",
        "Personnummer {NATIONAL_ID} saknas i ansökan.",
        "Betala till {IBAN}.",
        "Min e-post är {EMAIL}.",
    ],
}
HARD = [  # realistic text the detector is likely to miss; kept to be reported, not hidden
    ("en", "Ask {UNLISTED} to sign the consent form."),
    ("en", "the form was signed by {LOWER} yesterday."),
    ("en", "Call me at 415 555 2671 ext. 9."),
    ("en", "Reach the front desk on 0800 123 4567."),
    ("en", "My card is 4111-1111-1111-1111 but use the other one, 5500 0000 0000 0004."),
]
NEGATIVES = [
    "The meeting moved to 2026-11-29 at 14:30.",
    "Order 4111 1111 shipped in 3 boxes.",
    "Version 10.2.0.1 fixed the memory leak.",
    "The invoice total is 1 234 567,89 EUR.",
    "Room 101 is on the first floor.",
    "Tracking code 1Z999AA10123456784 arrived.",
    "Use port 8080 on localhost.",
    "May we start in June?",
    "Mark the boxes with the red tape.",
    "Will you bring the slides?",
    "The model scored 0.873 on the test set.",
    "Batch 20231015-0042 passed quality control.",
    "Paris is lovely in April.",
    "The price rose by 12.5% in 2025.",
    "ISBN 978-3-16-148410-0 is out of print.",
    "Die Sitzung beginnt um 9 Uhr in Raum 4.12.",
    "Le train part à 18h45 du quai 7.",
    "El pedido 55-2024-0193 está en camino.",
    "Il modulo 7B richiede 230 V.",
    "Het pakket weegt 12,5 kilo.",
    "Zamówienie nr 123456 zostało wysłane.",
    "Mötet flyttas till den 3 maj.",
    "Serial number SN-0042-7781-AB is registered.",
    "Temperature readings: 36.6, 37.1, 38.0.",
    "Call the function with timeout=30 and retries=5.",
    "The GPU has 139 GiB of memory.",
    "Coordinates 52.5200, 13.4050 mark the spot.",
    "Dial extension 4412 for support.",
    "Revenue grew from 1.2M to 3.4M.",
    "Section 12.3.4 covers retention.",
]


def luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    number = luhn_number(rng, prefix, length)
    style = rng.choice(["space", "dash", "plain"])
    if style == "plain":
        return number
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return (" " if style == "space" else "-").join(groups)


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_BBAN))
    length, letters = IBAN_BBAN[country]
    while True:  # some countries add national check digits: draw until the whole IBAN is valid
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
        bban += "".join(rng.choice(string.digits) for _ in range(length - letters))
        check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
        value = f"{country}{check:02d}{bban}"
        if iban_check.is_valid(value):
            break
    if rng.random() < 0.6:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random, region: str) -> str:
    kind = rng.choice(
        [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]
    )
    example = phonenumbers.example_number_for_type(region, kind)
    number = example
    for _ in range(200):  # vary the last digits, keeping a number valid in that region's plan
        national = str(example.national_number)
        candidate = copy.copy(example)
        candidate.national_number = int(
            national[:-4] + "".join(rng.choice(string.digits) for _ in range(4))
        )
        if phonenumbers.is_valid_number(candidate):
            number = candidate
            break
    fmt = rng.choice(
        [phonenumbers.PhoneNumberFormat.NATIONAL, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
    )
    return phonenumbers.format_number(number, fmt)


def email(rng: random.Random, name: str) -> str:
    parts = re.sub(
        r"[^a-z ]",
        "",
        name.lower().translate(str.maketrans("äöüéèçñíóúàąęśłćńżź", "aoueecniouaaeslcnzz")),
    ).split()
    local = rng.choice(
        [
            ".".join(parts),
            parts[0][0] + parts[-1],
            parts[0] + rng.choice(["", "_"]) + str(rng.randint(1, 99)),
        ]
    )
    domain = rng.choice(
        ["example.com", "mail.example.org", "clinic.example.de", "example.fr", "posta.example.it"]
    )
    return f"{local}@{domain}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"2001:db8:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def national_id(rng: random.Random, lang: str, template: str) -> str:
    if lang == "es":
        if "NIE" in template:
            digits = rng.randint(0, 9999999)
            letter = "TRWAGMYFPDXBNJZSQVHLCKE"[int(f"0{digits:07d}") % 23]
            return f"X{digits:07d}{letter}"
        number = rng.randint(10000000, 99999999)
        return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"
    if lang == "nl":
        while True:
            digits = [rng.randint(0, 9) for _ in range(8)]
            total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
            last = total % 11
            if last < 10 and digits[0] != 0:
                return "".join(map(str, digits)) + str(last)
    if lang == "pl":
        digits = [rng.randint(0, 9) for _ in range(10)]
        digits[2], digits[4] = rng.randint(0, 1), rng.randint(0, 2)
        check = (10 - sum(d * w for d, w in zip(digits, [1, 3, 7, 9] * 3, strict=False)) % 10) % 10
        return "".join(map(str, digits)) + str(check)
    return rng.choice(FIXED_IDS[lang])


FIXED_IDS = {  # checked with python-stdnum below
    "de": ["36 574 261 809", "86095742719", "47036892816"],
    "fr": ["2 95 10 99 126 111 93", "1 84 12 76 451 089 46"],
    "it": ["RSSMRA85T10A562S", "BNCGLI80A41F205F", "MRTMTT91D08F205J"],
    "sv": ["811228-9874", "670919-9530"],
}


def fill(rng: random.Random, lang: str, template: str, person: str) -> dict[str, object]:
    makers: dict[str, Callable[[], str]] = {
        "PERSON": lambda: person,
        "EMAIL": lambda: email(rng, person),
        "PHONE": lambda: phone(rng, REGIONS[lang]),
        "CREDIT_CARD": lambda: card(rng),
        "IBAN": lambda: iban(rng),
        "US_SSN": lambda: ssn(rng),
        "NATIONAL_ID": lambda: national_id(rng, lang, template),
        "IP_ADDRESS": lambda: ip(rng),
    }
    text, entities, position = "", [], 0
    for m in SLOT.finditer(template):
        text += template[position : m.start()]
        value = makers[m.group(1)]()
        if m.group(1) == "PERSON" and template[: m.start()].rstrip().endswith(
            ("Dr.", "Frau", "Herr", "Mme", "Sra.")
        ):
            value = value.split()[-1] if rng.random() < 0.5 else value
        entities.append(
            {"type": m.group(1), "start": len(text), "end": len(text) + len(value), "text": value}
        )
        text += value
        position = m.end()
    text += template[position:]
    return {"lang": lang, "text": text, "entities": entities}


def main() -> None:
    from stdnum.de import idnr
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.se import personnummer

    for check, values in (
        (idnr, FIXED_IDS["de"]),
        (nir, FIXED_IDS["fr"]),
        (codicefiscale, FIXED_IDS["it"]),
        (personnummer, FIXED_IDS["sv"]),
    ):
        assert all(check.is_valid(v) for v in values), values
    rng = random.Random(20261129)
    rows: list[dict[str, object]] = []
    for lang, templates in TEMPLATES.items():
        for round_ in range(4 if lang in ("en", "de", "fr", "es") else 5):
            for template in templates:
                rows.append(fill(rng, lang, template, rng.choice(NAMES[lang])))
            del round_
    for n, (lang, template) in enumerate(HARD * 2):
        if "{UNLISTED}" in template:
            name = UNLISTED[n % len(UNLISTED)]
            start = template.index("{UNLISTED}")
            text = template.replace("{UNLISTED}", name)
            rows.append(
                {
                    "lang": lang,
                    "text": text,
                    "entities": [
                        {"type": "PERSON", "start": start, "end": start + len(name), "text": name}
                    ],
                }
            )
        elif "{LOWER}" in template:
            name = rng.choice(NAMES["en"]).lower()
            start = template.index("{LOWER}")
            rows.append(
                {
                    "lang": lang,
                    "text": template.replace("{LOWER}", name),
                    "entities": [
                        {"type": "PERSON", "start": start, "end": start + len(name), "text": name}
                    ],
                }
            )
        elif n < len(HARD):
            entities = []
            for value, kind in (
                ("415 555 2671", "PHONE"),
                ("0800 123 4567", "PHONE"),
                ("4111-1111-1111-1111", "CREDIT_CARD"),
                ("5500 0000 0000 0004", "CREDIT_CARD"),
            ):
                if value in template:
                    start = template.index(value)
                    entities.append(
                        {"type": kind, "start": start, "end": start + len(value), "text": value}
                    )
            rows.append({"lang": lang, "text": template, "entities": entities})
    for sentence in NEGATIVES:
        rows.append({"lang": "xx", "text": sentence, "entities": []})
    with OUT.open("w", encoding="utf-8") as handle:
        for number, row in enumerate(rows, start=1):
            handle.write(json.dumps({"id": number, **row}, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} sentences to {OUT}")


if __name__ == "__main__":
    main()
