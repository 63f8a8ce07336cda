"""Answer accuracy on held-out chat rows: greedy generation, exact and contains matches.

Used to show a tuned version beating its base on the task it was tuned for, and by the
quantization report. Prompts are rendered with the gateway's chat renderer (the same one
training used) and sent as parts, so the score is what a client of the gateway would see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.engines.base import Engine, SamplingParams, collect
from modelyard.engines.chat_templates import render_chat
from modelyard.errors import InvalidInput


@dataclass(frozen=True)
class AnswerScore:
    rows: int
    exact: float
    contains: float

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "exact": self.exact, "contains": self.contains}


def read_chat_rows(path: Path) -> list[tuple[list[dict[str, Any]], str]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            expected = messages[-1]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise InvalidInput(f"{path} line {number}: not a chat row ({exc})") from exc
        rows.append((messages[:-1], str(expected)))
    if not rows:
        raise InvalidInput(f"{path} has no rows")
    return rows


def score_answers(
    engine: Engine, metadata: dict[str, Any], path: Path, *, max_tokens: int = 24
) -> AnswerScore:
    rows = read_chat_rows(path)
    exact = contains = 0
    for messages, expected in rows:
        chat = render_chat(metadata, messages)
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=chat.stop)
        text, _ = collect(engine.complete(chat.parts, params))
        answer = text.strip()
        exact += answer == expected.strip()
        contains += expected.strip().lower() in answer.lower()
    return AnswerScore(len(rows), exact / len(rows), contains / len(rows))
