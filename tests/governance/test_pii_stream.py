"""The streaming redactor never lets part of an entity out, whatever the chunking.

For texts with long e-mail addresses, spaced IBANs, phones, IDs and names: every split at
every character boundary, character-by-character feeding, fixed chunk sizes and (with
hypothesis) arbitrary chunkings must give exactly the non-streaming redaction of the whole
text, and no 3-character piece of any value the non-streaming redactor replaced may appear
in what the caller gets. Plus the bounded hold-back: a pending candidate longer than the
bound is redacted, never released.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.policy import PiiGuard
from modelyard.governance.pii.redact import Redactor
from modelyard.governance.pii.stream import CONTEXT, OutputFilter, open_tail

LONG_EMAIL = (
    "oluwaseun.quillfeather.procurement@accounts-payable-subsidiary-seven-seven-one.example.com"
)
"""Long enough that the old fixed 64-character hold released "oluwaseun.quillf" before the
address was complete (the bug this file guards against)."""
TEXTS = [
    f"Send invoices to {LONG_EMAIL} and ring Mr Brannigan on +49 30 901820.",
    "Wire it to DE89 3704 0044 0532 0130 00 or to gb82west12345698765432 today, then ring "
    "+49 30 901820 or (201) 555-0123 please.",
    "Dear Siobhan Brannigan,\nyour NINO AB 12 34 56 C and the Steuer-ID 36574261809 are "
    "noted; Herr Radomir van der Molen agreed.\nBest regards,\nKeziah Okonkwo\n",
    "From: Aoife Fairweather <aoife.fairweather@example.org> wrote: card 4111 1111 1111 1111 "
    "expired, SSN 123-45-6789. Sanne de Vries signed.",
    "fr76 3000 6000 0112 3456 7890 189 is my account; personnummer 19811218-9876, "
    "PESEL 44051401359, ask Dr. Quillfeather.",
    # A phone extension after a comma belongs to the number: it must not be released early.
    "Please ring (201) 555-0123, ext. 45 or wire DE89 3704 0044 0532 0130 00, Mr Okonkwo.",
]


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(("US", "GB", "DE", "FR"))


def _stream(
    analyzer: Analyzer, chunks: Sequence[str], *, restore: bool = False, max_hold: int = 1024
) -> str:
    out = OutputFilter(Redactor(analyzer), scan=True, restore=restore, max_hold=max_hold)
    pieces = [out.feed(chunk).to_caller for chunk in chunks]
    pieces.append(out.flush().to_caller)
    return "".join(pieces)


def _leaks(analyzer: Analyzer, text: str, output: str) -> list[str]:
    """3-character pieces of the replaced values found in ``output``."""
    values = [e.text for e in analyzer.find(text)]
    return [v[i : i + 3] for v in values for i in range(len(v) - 2) if v[i : i + 3] in output]


def _surroundings_share_no_trigram(analyzer: Analyzer, text: str) -> None:
    """Precondition that keeps the leak check literal: no 3-character piece of a value
    occurs in the text around the values (so any such piece in the output is a leak)."""
    redacted = Redactor(analyzer).redact(text, restorable=False)
    assert _leaks(analyzer, text, redacted) == [], "pick surroundings without those trigrams"


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_every_split_point_gives_the_whole_redaction(analyzer: Analyzer, text: str) -> None:
    expected = Redactor(analyzer).redact(text, restorable=False)
    assert expected.count("<") >= 3  # the text really carries several entities
    for i in range(1, len(text)):
        got = _stream(analyzer, [text[:i], text[i:]])
        assert got == expected, (i, text[:i])
    for size in (1, 2, 3, 5, 8, 13):
        got = _stream(analyzer, [text[i : i + size] for i in range(0, len(text), size)])
        assert got == expected, size


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_no_piece_of_a_replaced_value_reaches_the_caller(analyzer: Analyzer, text: str) -> None:
    _surroundings_share_no_trigram(analyzer, text)
    for i in range(1, len(text)):
        assert _leaks(analyzer, text, _stream(analyzer, [text[:i], text[i:]])) == [], i
    assert _leaks(analyzer, text, _stream(analyzer, list(text))) == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_chunking_gives_the_whole_redaction(analyzer: Analyzer, data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(TEXTS))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(text) - 1), max_size=30)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert _stream(analyzer, chunks) == Redactor(analyzer).redact(text, restorable=False)


def test_the_long_email_that_used_to_leak(analyzer: Analyzer) -> None:
    text = f"Sure. Please write to {LONG_EMAIL} for access."
    for size in (1, 4, 16, 64):
        got = _stream(analyzer, [text[i : i + size] for i in range(0, len(text), size)])
        assert got == "Sure. Please write to <EMAIL_1> for access.", size
        assert "oluwaseun" not in got and "olu" not in got


def test_restore_mode_equals_restore_of_the_whole(analyzer: Analyzer) -> None:
    guard = PiiGuard("redact", analyzer)
    guard.inbound([f"My address is {LONG_EMAIL}"])
    answer = (
        "Noted: <EMAIL_1>. Also reach carol.quillfeather@example.org or "
        "DE89 3704 0044 0532 0130 00."
    )
    expected = "Noted: " + LONG_EMAIL + ". Also reach <EMAIL_2> or <IBAN_1>."
    for i in range(1, len(answer)):
        out = guard.output()
        a, b = out.feed(answer[:i]), out.feed(answer[i:])
        c = out.flush()
        assert a.to_caller + b.to_caller + c.to_caller == expected, i
        assert a.to_log + b.to_log + c.to_log == (
            "Noted: <EMAIL_1>. Also reach <EMAIL_2> or <IBAN_1>."
        )


def test_a_pending_candidate_over_the_bound_is_redacted_not_released(
    analyzer: Analyzer,
) -> None:
    text = f"Write to {LONG_EMAIL} now, thanks."
    got = _stream(analyzer, list(text), max_hold=40)
    assert got == "Write to <REDACTED_1> now, thanks."
    assert _leaks(analyzer, text, got) == []
    # In one chunk the address is complete when it is analysed: redacted as what it is.
    assert _stream(analyzer, [text], max_hold=40) == "Write to <EMAIL_1> now, thanks."


def test_hold_back_stays_bounded(analyzer: Analyzer) -> None:
    out = OutputFilter(Redactor(analyzer), scan=True, restore=False, max_hold=64)
    released = []
    for _ in range(200):
        released.append(out.feed("x" * 7).to_caller)  # one endless token
        held, context = out.held
        assert held <= 64 + 7 and context <= CONTEXT
    released.append(out.feed(" then plain words follow here.").to_caller)
    released.append(out.flush().to_caller)
    text = "".join(released)
    assert "xxx" not in text and text.startswith("<REDACTED_1>")
    assert text.endswith("then plain words follow here.")


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("call +49 30 9018", "+49 30 9018"),
        ("IBAN DE89 3704 0044 ", "DE89 3704 0044 "),
        ("wire to gb82 west 1234", "gb82 west 1234"),
        ("met Sanne de Vr", "Sanne de Vr"),
        ("phone 555-0123 ext. 9", "555-0123 ext. 9"),
        ("mail bob@exa", "bob@exa"),
        ("see <EMAIL_", "<EMAIL_"),
        ("done, ", ""),
        ("ring 555-0123, ", "555-0123, "),
        ("ring 555-0123, ext.", "555-0123, ext."),
        ("line\n", ""),
    ],
)
def test_open_tail_holds_what_could_still_grow_into_an_entity(text: str, held: str) -> None:
    tail = text[open_tail(text) :]
    assert tail.endswith(held)
    assert len(tail.split()) <= len(held.split()) + 1  # at most one word more than needed
