"""Training data: read, validate and tokenize a JSONL file before any training starts.

A row is either a chat (``{"messages": [{"role", "content"}, …]}`` whose last message is the
assistant's answer) or ``{"prompt", "completion"}``. Chats are rendered with the same chat
renderer the gateway uses and tokenized part by part as the engine does (message text with
control-token strings read literally), so the tuned model sees at training time exactly the
prompt it will be served with; the loss covers only the answer tokens (the assistant's last
message and its end-of-turn marker, or the completion and end-of-sequence). Every problem in the
file is collected with its line number and reported at once as one :class:`InvalidInput`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelyard.engines.base import Prompt, PromptPart
from modelyard.engines.chat_templates import ROLES, render_chat
from modelyard.errors import InvalidInput

MAX_REPORTED = 10


class Tokenizer(Protocol):
    eos_id: int

    def encode(self, text: str, *, add_bos: bool, special: bool = True) -> list[int]: ...


def encode_prompt(tokenizer: Tokenizer, prompt: Prompt, *, add_bos: bool) -> list[int]:
    """Token ids of a prompt: a raw string whole, chat parts one by one (message text with
    ``special=False``); BOS, when asked for, only once at the start."""
    if isinstance(prompt, str):
        return tokenizer.encode(prompt, add_bos=add_bos)
    ids: list[int] = []
    for index, part in enumerate(prompt):
        ids += tokenizer.encode(part.text, add_bos=add_bos and index == 0, special=part.special)
    if not prompt and add_bos:
        ids += tokenizer.encode("", add_bos=True)
    return ids


@dataclass(frozen=True)
class Example:
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


@dataclass(frozen=True)
class Dataset:
    path: Path
    sha256: str
    examples: tuple[Example, ...]

    @property
    def rows(self) -> int:
        return len(self.examples)

    @property
    def tokens(self) -> int:
        return sum(e.length for e in self.examples)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _row_texts(row: Any, metadata: Mapping[str, Any]) -> tuple[Prompt, Prompt, bool]:
    """(prompt, answer, answer_is_chat) for one parsed row, or ValueError saying what's wrong."""
    if not isinstance(row, dict):
        raise ValueError("a row must be a JSON object")
    if "messages" in row:
        return (*_chat_texts(row["messages"], metadata), True)
    if "prompt" in row or "completion" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        for field, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"missing or empty field {field!r}")
        assert isinstance(prompt, str) and isinstance(completion, str)
        return prompt, completion, False
    raise ValueError("missing field: a row needs 'messages', or 'prompt' and 'completion'")


def _chat_texts(
    messages: Any, metadata: Mapping[str, Any]
) -> tuple[tuple[PromptPart, ...], tuple[PromptPart, ...]]:
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError("'messages' must be a list of at least two messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError(f"messages[{index}] needs a string 'content'")
        if message.get("role") not in ROLES:
            raise ValueError(f"messages[{index}] has role {message.get('role')!r}")
    last = messages[-1]
    if last["role"] != "assistant" or not last["content"].strip():
        raise ValueError("the last message must be the assistant's (non-empty) answer")
    chat = render_chat(metadata, messages[:-1])
    answer = [PromptPart(last["content"].strip(), special=False)]
    if chat.stop:
        answer.append(PromptPart(chat.stop[0], special=True))
    return chat.parts, tuple(answer)


def load_dataset(
    path: Path,
    tokenizer: Tokenizer,
    metadata: Mapping[str, Any],
    *,
    max_seq_len: int,
    what: str = "--data",
) -> Dataset:
    """Parse and tokenize every row; raise one InvalidInput listing what is wrong."""
    if not path.is_file():
        raise InvalidInput(f"{what}: no such file: {path}", param=what)
    problems: list[str] = []
    examples: list[Example] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                prompt, answer, chat = _row_texts(row, metadata)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                problems.append(f"line {number}: not valid JSON ({exc})")
                continue
            except (ValueError, InvalidInput) as exc:
                problems.append(f"line {number}: {exc}")
                continue
            prompt_ids = encode_prompt(tokenizer, prompt, add_bos=True)
            answer_ids = encode_prompt(tokenizer, answer, add_bos=False)
            if not chat:
                answer_ids.append(tokenizer.eos_id)
            example = Example(tuple(prompt_ids), tuple(answer_ids))
            if example.length > max_seq_len:
                problems.append(
                    f"line {number}: {example.length} tokens, over --max-seq-len {max_seq_len}"
                )
                continue
            examples.append(example)
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        tail = f"\n  … and {more} more" if more else ""
        raise InvalidInput(
            f"{what} {path} has {len(problems)} bad row(s); nothing was trained:\n  "
            + "\n  ".join(shown)
            + tail,
            param=what,
        )
    if not examples:
        raise InvalidInput(f"{what} {path} is empty: no rows to train on", param=what)
    return Dataset(path, file_sha256(path), tuple(examples))


def batches(examples: Sequence[Example], order: Sequence[int], size: int) -> list[list[Example]]:
    picked = [examples[i] for i in order]
    return [picked[i : i + size] for i in range(0, len(picked), size)]
