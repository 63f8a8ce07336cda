"""PII detection, placeholders, restoration, policies and streaming across chunk borders."""

from __future__ import annotations

import pytest

from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.policy import PiiBlocked, PiiGuard
from modelyard.governance.pii.redact import Redactor

TEXT = (
    "Hi, I am Anna Schmidt (anna.schmidt@example.de, +49 30 901820). Card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, DNI 12345678Z, from 192.168.1.20."
)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(("US", "GB", "DE", "FR"))


def test_finds_every_type(analyzer: Analyzer) -> None:
    found = {(e.type, e.text) for e in analyzer.find(TEXT)}
    assert found == {
        ("PERSON", "Anna Schmidt"),
        ("EMAIL", "anna.schmidt@example.de"),
        ("PHONE", "+49 30 901820"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN", "DE89 3704 0044 0532 0130 00"),
        ("US_SSN", "123-45-6789"),
        ("NATIONAL_ID", "12345678Z"),
        ("IP_ADDRESS", "192.168.1.20"),
    }


@pytest.mark.parametrize(
    "clean",
    [
        "The meeting is at 12:30:45 on 2026-11-29, room 4111.",
        "Card 4111 1111 1111 1112 fails the Luhn check.",
        "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum.",
        "Version 1.2.3.4000 is not an address; 000-12-3456 is not an SSN.",
        "May we meet in June to mark the release?",
    ],
)
def test_leaves_look_alikes_alone(analyzer: Analyzer, clean: str) -> None:
    assert analyzer.find(clean) == []


def test_placeholders_are_stable_and_restored(analyzer: Analyzer) -> None:
    redactor = Redactor(analyzer)
    first = redactor.redact("Mail bob@example.com and bob@example.com, or eve@example.org")
    assert first == "Mail <EMAIL_1> and <EMAIL_1>, or <EMAIL_2>"
    assert redactor.redact("again bob@example.com") == "again <EMAIL_1>"
    assert redactor.restore("Reply to <EMAIL_2>, not <EMAIL_9>") == (
        "Reply to eve@example.org, not <EMAIL_9>"
    )


def test_block_names_types_not_values(analyzer: Analyzer) -> None:
    guard = PiiGuard("block", analyzer)
    with pytest.raises(PiiBlocked) as caught:
        guard.inbound(["write to bob@example.com", "call +1 415 555 2671"])
    assert caught.value.http_status == 400
    assert "EMAIL, PHONE" in caught.value.message
    assert "bob@" not in caught.value.message and "555" not in caught.value.message
    assert PiiGuard("block", analyzer).inbound(["nothing personal"])[0] == ["nothing personal"]


def test_policies_inbound(analyzer: Analyzer) -> None:
    text = ["Write to bob@example.com"]
    assert PiiGuard("off", analyzer).inbound(text) == (text, text)
    assert PiiGuard("redact-logs", analyzer).inbound(text) == (text, ["Write to <EMAIL_1>"])
    assert PiiGuard("redact", analyzer).inbound(text) == (
        ["Write to <EMAIL_1>"],
        ["Write to <EMAIL_1>"],
    )


def _stream(guard: PiiGuard, text: str, size: int) -> tuple[str, str]:
    out = guard.output()
    caller, log = "", ""
    for i in range(0, len(text), size):
        piece = out.feed(text[i : i + size])
        caller, log = caller + piece.to_caller, log + piece.to_log
    last = out.flush()
    return caller + last.to_caller, log + last.to_log


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_streaming_restores_and_redacts_across_chunks(analyzer: Analyzer, size: int) -> None:
    guard = PiiGuard("redact", analyzer)
    model_sees, _ = guard.inbound(["My mail is bob@example.com"])
    assert model_sees == ["My mail is <EMAIL_1>"]
    answer = "Sure, <EMAIL_1> is noted. Also reach carol@example.org or 4111-1111-1111-1111. Bye"
    caller, log = _stream(guard, answer, size)
    assert caller == "Sure, bob@example.com is noted. Also reach <EMAIL_2> or <CREDIT_CARD_1>. Bye"
    assert log == "Sure, <EMAIL_1> is noted. Also reach <EMAIL_2> or <CREDIT_CARD_1>. Bye"


@pytest.mark.parametrize("size", [1, 4, 9])
def test_redact_logs_streams_through_but_logs_redacted(analyzer: Analyzer, size: int) -> None:
    guard = PiiGuard("redact-logs", analyzer)
    answer = "Contact Anna Schmidt at +49 30 901820 please."
    caller, log = _stream(guard, answer, size)
    assert caller == answer
    assert log == "Contact <PERSON_1> at <PHONE_1> please."


def test_off_passes_everything(analyzer: Analyzer) -> None:
    caller, log = _stream(PiiGuard("off", analyzer), "bob@example.com", 3)
    assert caller == log == "bob@example.com"


# The forms from the issue: each found on its own, without a keyword where it has a checksum.
@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("send it to de89370400440532013000 please", "IBAN", "de89370400440532013000"),
        ("iban: gb82 west 1234 5698 7654 32.", "IBAN", "gb82 west 1234 5698 7654 32"),
        ("Account DE89370400440532013000, thanks", "IBAN", "DE89370400440532013000"),
        ("The form lists 123 45 6789 for her.", "US_SSN", "123 45 6789"),
        ("Payroll has AB 12 34 56 C for him.", "NATIONAL_ID", "AB 12 34 56 C"),
        ("Use AB123456C on the form.", "NATIONAL_ID", "AB123456C"),
        ("Bitte tragen Sie 36574261809 ein.", "NATIONAL_ID", "36574261809"),
        ("Für die Abrechnung: 36 574 261 809.", "NATIONAL_ID", "36 574 261 809"),
        ("Le dossier 185077511600191 est ouvert.", "NATIONAL_ID", "185077511600191"),
        ("Het nummer 1112.22.333 hoort erbij.", "NATIONAL_ID", "1112.22.333"),
        ("Mijn BSN is 111222333.", "NATIONAL_ID", "111222333"),
        ("Adjunto el documento 12345678Z.", "NATIONAL_ID", "12345678Z"),
        ("Intestato a RSSMRA85T10A562S, pagato.", "NATIONAL_ID", "RSSMRA85T10A562S"),
        ("Le numéro 85073003328 figure sur la carte.", "NATIONAL_ID", "85073003328"),
        ("Proszę wpisać 44051401359 w formularzu.", "NATIONAL_ID", "44051401359"),
        ("Patienten 19811218-9876 kallas.", "NATIONAL_ID", "19811218-9876"),
        ("Dear Siobhan Quillfeather,\nthanks.", "PERSON", "Siobhan Quillfeather"),
        ("My name is Oluwaseun Brannigan and I need help.", "PERSON", "Oluwaseun Brannigan"),
        ("Hi Keziah, the report is attached.", "PERSON", "Keziah"),
        ("Best regards,\nThandiwe O'Rourke", "PERSON", "Thandiwe O'Rourke"),
        ("Signed: Radomir Vasquez-Ortega", "PERSON", "Radomir Vasquez-Ortega"),
        ("From: Aoife Fairweather <aoife@example.org>", "PERSON", "Aoife Fairweather"),
        ("Je m'appelle Ingeborg Dupont-Lafarge.", "PERSON", "Ingeborg Dupont-Lafarge"),
        ("Sehr geehrte Frau Zwetschgenbaum, danke.", "PERSON", "Zwetschgenbaum"),
    ],
)
def test_issue_forms_are_found(analyzer: Analyzer, text: str, kind: str, value: str) -> None:
    assert (kind, value) in {(e.type, e.text) for e in analyzer.find(text)}


@pytest.mark.parametrize(
    "clean",
    [
        "Your order number is 36574261809; keep it.",  # a valid Steuer-ID shape after "order"
        "Invoice INV-2026-621600 is due on 29.11.2026.",
        "ISBN 978-0-306-40615-7 and ISBN 9780306406157 are the same book.",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Upgrade to version 12.4.1 before 2026-12-01; it costs $1,299.00.",
        "The number 111222333 is a plain count.",  # a valid BSN, but no word says so
        "Dear Customer,\nyour parcel is on its way.",
        "Best regards,\nThe Support Team",
        "Hi Team, the release is out.",
        "Sehr geehrte Damen und Herren, anbei die Rechnung.",
    ],
)
def test_issue_look_alikes_stay_alone(analyzer: Analyzer, clean: str) -> None:
    assert analyzer.find(clean) == []


def test_a_keyword_lifts_but_is_not_required(analyzer: Analyzer) -> None:
    # Weak checksum (BSN passes 9 % of random numbers): needs its word or its layout.
    assert analyzer.find("Het nummer 111222333 hoort erbij.") == []
    assert [e.text for e in analyzer.find("BSN: 111222333")] == ["111222333"]
    # Strong checksum: found either way, and not after a word saying it is an order number.
    assert [e.text for e in analyzer.find("Steuer-ID 36574261809")] == ["36574261809"]
    assert [e.text for e in analyzer.find("Nummer 36574261809")] == ["36574261809"]
    assert analyzer.find("Order #36574261809") == []
