"""Each metric on small hand-made rows with known answers; data files and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.engines.base import PromptPart, prompt_text
from modelyard.engines.chat_templates import render_chat
from modelyard.errors import InvalidInput
from modelyard.evaluate.data import EvalRow, load_rows, parse_row
from modelyard.evaluate.metrics import (
    GENERATION_METRICS,
    check_rows,
    expected_choice,
    metric_kind,
    rouge_l_f,
)
from modelyard.evaluate.prompts import row_chat, row_prompt
from modelyard.evaluate.tasks import option_text, score_choice
from tests.evaluate.fakes import TableScorer


def row(expected: object, **extra: object) -> EvalRow:
    return parse_row(0, {"input": "q", "expected": expected, **extra}, "test")


@pytest.mark.parametrize(
    ("metric", "output", "expected", "score"),
    [
        ("exact", "  Paris\n", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("exact", "Lyon", ["Paris", "Lyon"], 1.0),
        ("contains", "I think it is PARIS.", "paris", 1.0),
        ("contains", "Berlin", "Paris", 0.0),
        ("regex", "order #12345 shipped", r"#\d{5}\b", 1.0),
        ("regex", "order #12 shipped", r"#\d{5}\b", 0.0),
        ("rouge-l", "the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("rouge-l", "dog", "the cat", 0.0),
        ("json-valid", '{"a": 1}', True, 1.0),
        ("json-valid", '```json\n{"a": [1, 2]}\n```', True, 1.0),
        ("json-valid", "{a: 1}", True, 0.0),
    ],
)
def test_generation_metrics(metric: str, output: str, expected: object, score: float) -> None:
    assert GENERATION_METRICS[metric](output, row(expected)) == score
    assert metric_kind(metric) == "generate"


def test_rouge_l_by_hand() -> None:
    # LCS("the cat was found under the bed", "the cat was under the bed") = 6 words;
    # precision 6/7, recall 6/6 -> F1 = 2*(6/7)*1/((6/7)+1) = 12/13.
    value = rouge_l_f("the cat was found under the bed", "the cat was under the bed")
    assert value == pytest.approx(12 / 13)
    assert rouge_l_f("a b c d", "a c") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_json_schema_valid() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    check = GENERATION_METRICS["json-schema-valid"]
    assert check('{"name": "Ada", "age": 36}', row(True, schema=schema)) == 1.0
    assert check('{"name": "Ada", "age": "36"}', row(True, schema=schema)) == 0.0
    assert check('{"name": "Ada"}', row(True, schema=schema)) == 0.0
    assert check("not json", row(True, schema=schema)) == 0.0
    with pytest.raises(InvalidInput, match="needs a 'schema'"):
        check("{}", row(True))
    with pytest.raises(InvalidInput, match="schema is not valid"):
        check("{}", row(True, schema={"type": "no-such-type"}))


def test_bad_regex_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="bad regular expression"):
        GENERATION_METRICS["regex"]("x", row("(unclosed"))


def test_choice_by_text_and_index() -> None:
    scorer = TableScorer({"Paris": -1.0, "Berlin": -3.0, "Madrid": -5.0})
    by_text = row("Paris", choices=["Berlin", "Paris", "Madrid"])
    score, result = score_choice(scorer, by_text, "Capital of France:")
    assert score == 1.0 and result["predicted"] == 1 and result["expected_index"] == 1
    assert result["logprobs"] == [-3.0, -1.0, -5.0]
    wrong = row(0, choices=["Berlin", "Paris"])
    assert score_choice(scorer, wrong, "Capital of France:")[0] == 0.0
    # Options are scored as continuations after a space, like lm-eval's target delimiter.
    assert scorer.calls[0] == ("Capital of France:", " Berlin")
    assert option_text("Q: ", "A") == "A"


def test_expected_choice_errors() -> None:
    with pytest.raises(InvalidInput, match="needs 'choices'"):
        expected_choice(row("x"))
    with pytest.raises(InvalidInput, match="out of range"):
        expected_choice(row(5, choices=["a", "b"]))
    with pytest.raises(InvalidInput, match="not one of the choices"):
        expected_choice(row("c", choices=["a", "b"]))


def test_check_rows_refuses_before_running() -> None:
    rows = [row("ok"), parse_row(1, {"input": "q", "expected": 3}, "t")]
    with pytest.raises(InvalidInput, match="row 1: 'expected' must be a string"):
        check_rows("contains", rows)
    check_rows("json-valid", rows)  # json-valid ignores 'expected'


def test_unknown_metric() -> None:
    with pytest.raises(InvalidInput, match="unknown metric 'bleu'"):
        metric_kind("bleu")


def test_load_rows_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"input": "a", "expected": "b", "id": 7})
        + "\n\n"
        + json.dumps({"messages": [{"role": "user", "content": "hi"}], "expected": "hello"})
        + "\n"
    )
    rows = load_rows(good)
    assert [r.index for r in rows] == [0, 1] and rows[0].extra == {"id": 7}
    cases = {
        "not json\n": "good.jsonl:1: not valid JSON",
        '{"expected": "x"}\n': "exactly one of 'input'",
        '{"input": "x"}\n': "has no 'expected'",
        '{"input": "x", "expected": 1, "choices": ["only"]}\n': "at least two",
        '{"messages": [], "expected": "x"}\n': "non-empty list",
        "\n": "has no rows",
    }
    for text, message in cases.items():
        bad = tmp_path / "good.jsonl"
        bad.write_text(text)
        with pytest.raises(InvalidInput, match=message):
            load_rows(bad)
    with pytest.raises(InvalidInput, match="no such data file"):
        load_rows(tmp_path / "missing.jsonl")


def test_messages_rows_render_as_the_gateway_does() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Capital of France?"},
    ]
    chat_row = parse_row(0, {"messages": messages, "expected": "Paris"}, "test")
    gemma = {"architecture": "gemma3"}
    prompt, stops = row_chat(chat_row, gemma)
    assert prompt == render_chat(gemma, messages).parts
    assert stops == ("<end_of_turn>",)
    assert prompt_text(prompt) == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nCapital of France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert PromptPart("Capital of France?", special=False) in prompt
    plain = row_prompt(parse_row(0, {"messages": messages[1:2], "expected": "x"}, "t"), {})
    assert prompt_text(plain).endswith("User: Hi\nAssistant:")
    assert row_prompt(row("x"), gemma) == "q"
    assert row_chat(row("x"), gemma) == ("q", ())
