"""A batch input file, line by line: structure on upload, bodies when the batch is created.

Each line is one JSON object ``{"custom_id", "method": "POST", "url", "body"}`` (OpenAI's
format). :func:`parse_lines` checks the structure (UTF-8, bounded JSON, unique custom ids,
a supported url) and is run when the file is uploaded; :func:`check_bodies` validates every
body against the endpoint's request schema when a batch is created from it. Both report every
problem with its line number (up to :data:`MAX_REPORTED`), never only the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from modelyard.errors import InvalidInput, UnsafeModel
from modelyard.gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest
from modelyard.intake.safe_json import loads

ENDPOINTS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}
"""The routes a batch may call, with the schema their bodies must meet."""

MAX_CUSTOM_ID = 512
MAX_REPORTED = 100
"""Problems listed at most (the message says how many there were)."""


@dataclass(frozen=True)
class InputLine:
    line_no: int
    """1-based line number in the file (blank lines keep their numbers)."""
    custom_id: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class LineProblem:
    line: int | None
    message: str
    param: str | None = None
    code: str = "invalid_request"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def _line(number: int, raw: bytes, max_line_bytes: int) -> InputLine | LineProblem:
    try:
        value = loads(raw, what=f"line {number}", max_bytes=max_line_bytes)
    except UnsafeModel as exc:
        return LineProblem(number, exc.message.replace("refused ", "", 1))
    if not isinstance(value, dict):
        return LineProblem(number, f"line {number} is not a JSON object")
    custom_id, method, url, body = (value.get(k) for k in ("custom_id", "method", "url", "body"))
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        return LineProblem(
            number, f"custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters", "custom_id"
        )
    if method != "POST":
        return LineProblem(number, "method must be POST", "method")
    if url not in ENDPOINTS:
        return LineProblem(number, f"url must be one of {', '.join(ENDPOINTS)}", "url")
    if not isinstance(body, dict):
        return LineProblem(number, "body must be a JSON object", "body")
    return InputLine(number, custom_id, url, body)


def parse_lines(
    content: bytes, *, max_lines: int, max_line_bytes: int
) -> tuple[list[InputLine], list[LineProblem]]:
    """Every request line of ``content`` and every structural problem found."""
    lines: list[InputLine] = []
    problems: list[LineProblem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = _line(number, raw, max_line_bytes)
        if isinstance(parsed, LineProblem):
            problems.append(parsed)
            continue
        if parsed.custom_id in seen:
            problems.append(
                LineProblem(
                    number,
                    f"custom_id {parsed.custom_id!r} is used already on line "
                    f"{seen[parsed.custom_id]}",
                    "custom_id",
                    "duplicate_custom_id",
                )
            )
            continue
        seen[parsed.custom_id] = number
        lines.append(parsed)
        if len(lines) > max_lines:
            problems.append(
                LineProblem(None, f"a batch holds at most {max_lines} requests", None, "too_many")
            )
            break
    if not lines and not problems:
        problems.append(LineProblem(None, "the file holds no request lines", None, "empty_file"))
    return lines, problems


def _body_problem(line: InputLine, schema: type[BaseModel]) -> LineProblem | None:
    try:
        parsed = schema.model_validate(line.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return LineProblem(line.line_no, f"body.{where}: {first['msg']}", f"body.{where}")
    if getattr(parsed, "stream", False):
        return LineProblem(line.line_no, "a batch request cannot stream", "body.stream")
    return None


def check_bodies(lines: list[InputLine], endpoint: str) -> list[LineProblem]:
    """Every line's url must be the batch's ``endpoint`` and its body that route's schema."""
    schema = ENDPOINTS[endpoint]
    problems = []
    for line in lines:
        if line.url != endpoint:
            problems.append(
                LineProblem(
                    line.line_no, f"url is {line.url}, not the batch's endpoint {endpoint}", "url"
                )
            )
            continue
        problem = _body_problem(line, schema)
        if problem is not None:
            problems.append(problem)
    return problems


def summary(problems: list[LineProblem]) -> str:
    """One message for a 400: the first few problems and how many there were."""
    shown = "; ".join(
        (f"line {p.line}: " if p.line is not None else "") + p.message for p in problems[:5]
    )
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"the batch input file is not valid: {shown}{more}"


def refuse(problems: list[LineProblem]) -> InvalidInput:
    return InvalidInput(summary(problems), param="file", code="invalid_batch_file")


def body_json(line: InputLine) -> str:
    return json.dumps(line.body, separators=(",", ":"), ensure_ascii=False)
