"""docs/clients.md's code blocks, run as a reader would run them.

The page's first Python block (in :data:`SETUP`) sets ``BASE_URL`` to the default
``http://127.0.0.1:8080/v1`` and reads ``KEY`` from ``MODELYARD_KEY``. Here the key comes from
the test server, and ``BASE_URL`` is checked to be the documented default, then pointed at the
test server; nothing else is rewritten. The Python blocks of one section then run in order in
one namespace (compiled with the page's file name and line numbers, so a failure points at the
page), their printed output captured. Shell blocks run in bash with ``$KEY`` set and the
documented origin replaced by the test server's.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseLanguageModel

from tests.gateway.conftest import Server

DOC = Path(__file__).resolve().parents[3] / "docs" / "clients.md"
DOC_ORIGIN = "http://127.0.0.1:8080"
DOC_BASE_URL = f"{DOC_ORIGIN}/v1"
KEY_VARIABLE = "MODELYARD_KEY"

SETUP = "Base URL, key and models"
CURL = "curl"
OPENAI = "The openai Python client"
LANGCHAIN = "LangChain"
LLAMAINDEX = "LlamaIndex"
ENVIRONMENT = "Environment variables"
SECTIONS = (SETUP, CURL, OPENAI, LANGCHAIN, LLAMAINDEX, ENVIRONMENT)
"""The page's ``##`` sections that hold code, each run by a test in this folder."""

NOT_FOLLOWED = (
    type,
    ModuleType,
    FunctionType,
    BuiltinFunctionType,
    BaseLanguageModel,
)

FENCE = re.compile(r"^```(\S*)\s*$")
HEADING = re.compile(r"^## (.+?)\s*$")


@dataclass(frozen=True)
class Block:
    language: str
    section: str
    line: int
    """The line of the page where the code starts (1-based)."""
    code: str


def blocks(section: str | None = None, language: str | None = None) -> list[Block]:
    """The page's fenced code blocks, in order; only ``section``'s and ``language``'s if given."""
    found: list[Block] = []
    current = ""
    lines = DOC.read_text().splitlines()
    index = 0
    while index < len(lines):
        if heading := HEADING.match(lines[index]):
            current = heading.group(1)
        elif fence := FENCE.match(lines[index]):
            start = index + 1
            end = start
            while lines[end] != "```":
                end += 1
            found.append(Block(fence.group(1), current, start + 1, "\n".join(lines[start:end])))
            index = end
        index += 1
    return [b for b in found if section in (None, b.section) and language in (None, b.language)]


@dataclass
class Run:
    """What a section's Python blocks left behind: their names, and what they printed."""

    names: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""

    def __getitem__(self, name: str) -> Any:
        return self.names[name]

    def close(self) -> None:
        close_http_clients(v for k, v in self.names.items() if not k.startswith("__"))


def close_http_clients(objects: Iterable[Any]) -> None:
    """Close the HTTP clients that ``objects`` hold, however deep (a LlamaIndex object holds
    an ``openai`` client, which holds an ``httpx.Client``). The page's scripts leave that to
    the end of the process; a test closes them, so that no connection is left for the garbage
    collector to find open. Modules, classes and functions are not followed, nor LangChain's
    chat models: they share one ``httpx.Client`` per base URL for the life of the process (a
    cache in ``langchain_openai``), which later ones still use. (Its embeddings own theirs.)"""
    seen: set[int] = set()
    todo = list(objects)
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, NOT_FOLLOWED):
            continue
        seen.add(id(obj))
        if isinstance(obj, httpx.Client):
            obj.close()
        else:
            todo.extend(gc.get_referents(obj))


def _exec(block: Block, names: dict[str, Any]) -> None:
    padded = "\n" * (block.line - 1) + block.code
    exec(compile(padded, str(DOC), "exec"), names)


def run_python(section: str, server: Server | None, *, setup: bool = True) -> Run:
    """Run ``section``'s Python blocks in one namespace, after the setup block when ``setup``
    (with ``MODELYARD_KEY`` = the server's user key, ``BASE_URL`` = the server's)."""
    run = Run(names={"__name__": "clients_doc"})
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        if setup:
            assert server is not None
            patch.setenv(KEY_VARIABLE, server.user_key)
            (setup_block,) = blocks(SETUP, "python")
            _exec(setup_block, run.names)
            assert run.names["BASE_URL"] == DOC_BASE_URL
            assert run.names["KEY"] == server.user_key
            run.names["BASE_URL"] = server.v1
        code = blocks(section, "python")
        assert code, f"no python blocks under '## {section}'"
        for block in code:
            _exec(block, run.names)
    run.stdout = out.getvalue()
    return run


SHOWN = re.compile(r"^\s*print\(.*\)  # (.+)$")


def shown(section: str) -> list[str]:
    """The lines the page says ``section``'s Python blocks print: the comment after each
    ``print(…)``, up to a ``: `` that starts a remark."""
    return [
        match.group(1).split(": ", 1)[0]
        for block in blocks(section, "python")
        for line in block.code.splitlines()
        if (match := SHOWN.match(line))
    ]


def assert_printed_as_shown(section: str, run: Run) -> None:
    """Each line the page shows was printed, in the page's order."""
    printed = run.stdout.splitlines()
    expected = shown(section)
    assert expected, f"no printed output shown under '## {section}'"
    position = 0
    for line in expected:
        assert line in printed[position:], f"{line!r} not printed; printed: {printed[position:]}"
        position = printed.index(line, position) + 1


def shell(block: Block, server: Server, epilogue: str = "") -> subprocess.CompletedProcess[str]:
    """Run a shell block (then ``epilogue``) in bash, as a reader would after
    ``KEY=<their key>``, with the venv's Python first on ``PATH``."""
    assert DOC_ORIGIN in block.code, f"{DOC}:{block.line} names no {DOC_ORIGIN}"
    script = block.code.replace(DOC_ORIGIN, server.url) + "\n" + epilogue
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "KEY": server.user_key, "PATH": path}
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{DOC}:{block.line}: {result.stderr}"
    return result


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    return float(dot / norms)
