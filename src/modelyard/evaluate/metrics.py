"""Metrics: each turns one row's output into a score in [0, 1].

Generation metrics look at the text the model wrote (greedy, seeded). ``choice`` never
generates: it scores each option's log-likelihood after the prompt and picks the best
(:mod:`modelyard.evaluate.choice`). ``perplexity`` reads a text file instead of rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from modelyard.errors import InvalidInput
from modelyard.evaluate.data import EvalRow

MetricKind = Literal["generate", "choice", "perplexity"]
GenerationMetric = Callable[[str, EvalRow], float]

KINDS: dict[str, MetricKind] = {
    "exact": "generate",
    "contains": "generate",
    "regex": "generate",
    "rouge-l": "generate",
    "json-valid": "generate",
    "json-schema-valid": "generate",
    "choice": "choice",
    "perplexity": "perplexity",
}


def metric_kind(name: str) -> MetricKind:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown metric {name!r}; choose one of: {', '.join(KINDS)}", param="metric"
        ) from None


def _expected_texts(row: EvalRow) -> list[str]:
    values = row.expected if isinstance(row.expected, list) else [row.expected]
    if not all(isinstance(v, str) for v in values):
        raise InvalidInput(f"row {row.index}: 'expected' must be a string or a list of strings")
    return [str(v) for v in values]


def exact(output: str, row: EvalRow) -> float:
    """1 when the output, stripped of surrounding whitespace, equals an expected text."""
    return float(any(output.strip() == e.strip() for e in _expected_texts(row)))


def contains(output: str, row: EvalRow) -> float:
    """1 when an expected text occurs in the output (case-insensitive)."""
    folded = output.casefold()
    return float(any(e.casefold() in folded for e in _expected_texts(row)))


def regex(output: str, row: EvalRow) -> float:
    """1 when an expected regular expression matches somewhere in the output."""
    for pattern in _expected_texts(row):
        try:
            if re.search(pattern, output):
                return 1.0
        except re.error as exc:
            raise InvalidInput(
                f"row {row.index}: bad regular expression {pattern!r}: {exc}"
            ) from exc
    return 0.0


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token == other else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


def rouge_l_f(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens (longest common subsequence)."""
    cand = re.findall(r"\w+", candidate.lower())
    ref = re.findall(r"\w+", reference.lower())
    if not cand or not ref:
        return float(cand == ref)
    common = _lcs(cand, ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(cand), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(output: str, row: EvalRow) -> float:
    return max(rouge_l_f(output, e) for e in _expected_texts(row))


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n?```$", re.DOTALL)


def parse_json_output(output: str) -> tuple[bool, Any]:
    """Parse the output as JSON (a surrounding Markdown code fence is allowed)."""
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return False, None


def json_valid(output: str, row: EvalRow) -> float:
    """1 when the output is JSON; ``expected`` (true/false) is not compared."""
    return float(parse_json_output(output)[0])


def json_schema_valid(output: str, row: EvalRow) -> float:
    """1 when the output is JSON that validates against the row's ``schema``."""
    import jsonschema

    if row.schema is None:
        raise InvalidInput(f"row {row.index}: json-schema-valid needs a 'schema' on every row")
    ok, value = parse_json_output(output)
    if not ok:
        return 0.0
    try:
        jsonschema.validate(value, row.schema)
    except jsonschema.ValidationError:
        return 0.0
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"row {row.index}: the schema is not valid: {exc.message}") from exc
    return 1.0


GENERATION_METRICS: dict[str, GenerationMetric] = {
    "exact": exact,
    "contains": contains,
    "regex": regex,
    "rouge-l": rouge_l,
    "json-valid": json_valid,
    "json-schema-valid": json_schema_valid,
}


def expected_choice(row: EvalRow) -> int:
    """The index of the right option: ``expected`` is the option's text or its index."""
    if row.choices is None:
        raise InvalidInput(f"row {row.index}: the choice metric needs 'choices' on every row")
    expected = row.expected
    if isinstance(expected, bool) or not isinstance(expected, int | str):
        raise InvalidInput(f"row {row.index}: 'expected' must be an option's text or index")
    if isinstance(expected, int):
        if not 0 <= expected < len(row.choices):
            raise InvalidInput(f"row {row.index}: expected index {expected} is out of range")
        return expected
    if expected not in row.choices:
        raise InvalidInput(f"row {row.index}: expected {expected!r} is not one of the choices")
    return row.choices.index(expected)


def check_rows(metric: str, rows: list[EvalRow]) -> None:
    """Refuse data that the metric cannot score before anything runs or is stored."""
    for row in rows:
        if metric == "choice":
            expected_choice(row)
        elif metric == "json-schema-valid":
            if row.schema is None:
                raise InvalidInput(f"row {row.index}: json-schema-valid needs a 'schema'")
        elif metric in ("exact", "contains", "regex", "rouge-l"):
            _expected_texts(row)
