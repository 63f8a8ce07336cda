"""Property tests for model names and references: any text is accepted or refused cleanly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.catalog.names import NAME_PATTERN, derive_name, validate_name
from modelyard.catalog.refs import MAX_VERSION, ModelRef, parse_ref
from modelyard.errors import InvalidInput

FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True)
NAME_ALPHABET = st.sampled_from("abcz019._-@/\\ \n\tÅİ²٣")
names = st.from_regex(NAME_PATTERN, fullmatch=True)


@FUZZ
@given(st.one_of(st.text(), st.text(NAME_ALPHABET)))
def test_validate_name_accepts_exactly_the_pattern(text: str) -> None:
    try:
        assert validate_name(text) == text
    except InvalidInput as exc:
        assert exc.param == "name"
        assert NAME_PATTERN.fullmatch(text) is None
    else:
        assert NAME_PATTERN.fullmatch(text) is not None
        assert text.isascii() and "\n" not in text


@FUZZ
@given(st.one_of(st.text(), st.text(NAME_ALPHABET)))
def test_derive_name_gives_a_valid_name_or_refuses(stem: str) -> None:
    try:
        derived = derive_name(stem)
    except InvalidInput:
        return
    assert validate_name(derived) == derived


@FUZZ
@given(
    st.one_of(
        st.text(),
        st.text(NAME_ALPHABET),
        st.builds(lambda n, v: f"{n}@{v}", names, st.text(st.sampled_from("0123456789²٣ +-_"))),
        st.builds(lambda n, d: f"{n}@{'9' * d}", names, st.integers(0, 6000)),
    )
)
def test_parse_ref_round_trips_or_refuses(text: str) -> None:
    try:
        ref = parse_ref(text)
    except InvalidInput:
        return
    assert isinstance(ref, ModelRef)
    assert parse_ref(str(ref)) == ref
    assert ref.version is None or ref.version >= 1


@FUZZ
@given(names, st.integers(1, MAX_VERSION))
def test_every_valid_reference_parses(name: str, version: int) -> None:
    assert parse_ref(name) == ModelRef(name)
    assert parse_ref(f"{name}@{version}") == ModelRef(name, version)


@FUZZ
@given(names, st.integers(MAX_VERSION + 1, 10**40))
def test_versions_past_the_database_integer_are_refused(name: str, version: int) -> None:
    try:
        parse_ref(f"{name}@{version}")
    except InvalidInput as exc:
        assert "a number from 1" in exc.message
    else:
        raise AssertionError(f"{name}@{version} was accepted")
