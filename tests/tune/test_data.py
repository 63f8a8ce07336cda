"""Training data validation: every bad row is reported, with its line, before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.errors import InvalidInput
from modelyard.tune.data import load_dataset
from modelyard.tune.recipe import LoraRecipe

GEMMA = {"architecture": "gemma3"}


class CharTokenizer:
    """One token per character (BOS = 2, EOS = 1): enough to test lengths and masks."""

    eos_id = 1

    def encode(self, text: str, *, add_bos: bool, special: bool = True) -> list[int]:
        return ([2] if add_bos else []) + [10 + (ord(c) % 200) for c in text]


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def chat(user: str, answer: str) -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
    )


def load(path: Path, max_seq_len: int = 200) -> object:
    return load_dataset(path, CharTokenizer(), GEMMA, max_seq_len=max_seq_len)


def test_chat_rows_render_with_the_gateway_format_and_mask_the_prompt(tmp_path: Path) -> None:
    dataset = load_dataset(
        write(tmp_path, chat("hi", "Queue: X")), CharTokenizer(), GEMMA, max_seq_len=200
    )
    (example,) = dataset.examples
    prompt = "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert example.prompt_ids == tuple(CharTokenizer().encode(prompt, add_bos=True))
    assert example.answer_ids == tuple(
        CharTokenizer().encode("Queue: X<end_of_turn>", add_bos=False)
    )
    assert dataset.rows == 1 and len(dataset.sha256) == 64


def test_prompt_completion_rows_end_with_eos(tmp_path: Path) -> None:
    row = json.dumps({"prompt": "2+2=", "completion": "4"})
    (example,) = load_dataset(
        write(tmp_path, row, ""), CharTokenizer(), GEMMA, max_seq_len=50
    ).examples
    assert example.answer_ids[-1] == CharTokenizer.eos_id and len(example.answer_ids) == 2


def test_not_jsonl_is_refused_with_the_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, chat("a", "b"), "this is not json", "[1, 2]")
    with pytest.raises(InvalidInput) as caught:
        load(path)
    message = caught.value.message
    assert "2 bad row(s)" in message and "nothing was trained" in message
    assert "line 2: not valid JSON" in message and "line 3: a row must be a JSON object" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"text": "x"}, "missing field"),
        ({"prompt": "x"}, "missing or empty field 'completion'"),
        ({"prompt": "", "completion": "y"}, "missing or empty field 'prompt'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "at least two messages"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]},
            "last message must be the assistant",
        ),
        (
            {
                "messages": [
                    {"role": "robot", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ]
            },
            "has role 'robot'",
        ),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}, "'content'"),
    ],
)
def test_missing_fields_are_refused(tmp_path: Path, row: object, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        load(write(tmp_path, json.dumps(row)))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is empty"):
        load(write(tmp_path, "", "   "))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        load(tmp_path / "nope.jsonl")


def test_rows_over_max_seq_len_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, chat("short", "ok"), chat("x" * 300, "long"))
    with pytest.raises(InvalidInput, match=r"line 2: \d+ tokens, over --max-seq-len 100"):
        load(path, max_seq_len=100)


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    path = write(tmp_path, *["{bad"] * 25)
    with pytest.raises(InvalidInput, match=r"25 bad row\(s\)[\s\S]*and 15 more"):
        load(path)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("rank", 0, "--rank"),
        ("lr", 0.0, "--lr"),
        ("epochs", 0, "--epochs"),
        ("max_seq_len", 2, "--max-seq-len"),
        ("target_modules", ("lm_head",), "unknown --target-modules lm_head"),
        ("layers", 0, "--layers"),
    ],
)
def test_bad_hyperparameters_are_refused(field: str, value: object, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        LoraRecipe(base="m@1", data="d", name="n", **{field: value})  # type: ignore[arg-type]


def test_run_id_is_stable_and_ignores_threads() -> None:
    one = LoraRecipe(base="m@1", data="d", name="n", threads=1)
    two = LoraRecipe(base="m@1", data="d", name="n", threads=2)
    other = LoraRecipe(base="m@1", data="d", name="n", rank=4)
    assert one.run_id("a", "b") == two.run_id("a", "b") != other.run_id("a", "b")
    assert one.run_id("a", "b") != one.run_id("a", "c")
