from __future__ import annotations

import pytest

from modelyard.catalog.names import derive_name, validate_name
from modelyard.catalog.refs import ModelRef, parse_ref
from modelyard.errors import InvalidInput


@pytest.mark.parametrize("name", ["a", "gemma3-270m", "llama-3.2-1b.q4_k_m", "x" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b", "/abs/path", "Upper", "-lead", ".hidden", "x" * 65, "a b", "é"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid model name"):
        validate_name(name)


def test_derive_name() -> None:
    assert derive_name("Llama-3.2-1B-Instruct.Q4_K_M") == "llama-3.2-1b-instruct.q4_k_m"


def test_refs() -> None:
    assert parse_ref("gemma3-270m") == ModelRef("gemma3-270m")
    assert parse_ref("gemma3-270m@2") == ModelRef("gemma3-270m", 2)
    for bad in ("m@", "m@0", "m@x", "m@-1", "../m@1"):
        with pytest.raises(InvalidInput):
            parse_ref(bad)
