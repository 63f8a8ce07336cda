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
