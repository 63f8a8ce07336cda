"""Batch input files line by line: structure on upload, bodies at create; every problem with
its line number."""

from __future__ import annotations

import json

from modelyard.batch.input_lines import check_bodies, parse_lines, summary


def line(custom_id: str, url: str = "/v1/chat/completions", **body: object) -> bytes:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    row = {"custom_id": custom_id, "method": "POST", "url": url, "body": payload}
    return json.dumps(row).encode() + b"\n"


def parse(content: bytes, max_lines: int = 100) -> tuple[list, list]:
    return parse_lines(content, max_lines=max_lines, max_line_bytes=4096)


def test_good_lines_keep_their_file_line_numbers() -> None:
    lines, problems = parse(line("a") + b"\n   \n" + line("b"))
    assert problems == []
    assert [(x.line_no, x.custom_id) for x in lines] == [(1, "a"), (4, "b")]


def test_every_structural_problem_is_reported() -> None:
    content = (
        b"[1, 2]\n"
        + b'{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": 3}\n'
        + line("a")
        + line("a")
        + line("", "/v1/chat/completions")
        + line("c", "/admin/keys")
        + b'{"custom_id": "d", "method": "GET", "url": "/v1/completions", "body": {}}\n'
        + b"\xff\xfe\n"
        + b"[" * 100
        + b"\n"
        + b"9" * 50
        + b"\n"
    )
    lines, problems = parse(content)
    assert [x.custom_id for x in lines] == ["a"]
    assert [p.line for p in problems] == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert problems[2].code == "duplicate_custom_id" and "line 3" in problems[2].message
    assert {problems[4].param, problems[5].param} == {"url", "method"}
    assert "line 1" in summary(problems) and "(and 4 more)" in summary(problems)


def test_a_line_over_the_size_bound_is_refused_not_parsed() -> None:
    _, problems = parse(line("a", extra="x" * 5000))
    assert len(problems) == 1 and "more than 4096" in problems[0].message


def test_too_many_lines_and_empty_files() -> None:
    _, problems = parse(line("a") + line("b") + line("c"), max_lines=2)
    assert problems[-1].code == "too_many"
    _, problems = parse(b"\n\n")
    assert problems[0].code == "empty_file"


def test_bodies_checked_against_the_endpoint_schema() -> None:
    lines, _ = parse(
        line("ok")
        + line("streams", stream=True)
        + line("other", "/v1/embeddings")
        + json.dumps(
            {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": {}}
        ).encode()
    )
    problems = check_bodies(lines, "/v1/chat/completions")
    assert [(p.line, p.param) for p in problems] == [
        (2, "body.stream"),
        (3, "url"),
        (4, "body.model"),
    ]
    embed = json.dumps(
        {
            "custom_id": "e",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "m", "input": "x"},
        }
    ).encode()
    lines, _ = parse(embed)
    assert check_bodies(lines, "/v1/embeddings") == []
