"""The worked example of docs/advisor.md and the README's commands print what the docs say.

Every ``$ modelyard …`` command of the worked example (bar the two that import and measure
a real model on this machine, covered by test_cli_flow) runs through the real Typer app
against a scratch ``MODELYARD_HOME``, in the documented order, and every output line the
doc shows must be a line of what it prints now.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
ADVISOR_DOC = ROOT / "docs" / "advisor.md"
README = ROOT / "README.md"
MEASURED_HERE = ("models import", "hardware detect")
"""Commands whose output is this machine's own measurement (test_cli_flow runs them)."""

USAGE = [  # the four example requests docs/advisor.md's chargeback reads
    ("k-legal-1", "legal", "2026-11-03T09:12:00", 1_520_000, 171_000),
    ("k-legal-1", "legal", "2026-11-04T14:40:00", 1_310_000, 150_000),
    ("k-legal-2", "legal", "2026-11-05T11:05:00", 1_340_000, 161_000),
    ("k-sales-1", "sales", "2026-11-05T16:30:00", 640_000, 95_000),
]


@dataclass(frozen=True)
class Documented:
    args: list[str]
    output: list[str]


def _clean(line: str) -> str:
    return line.strip()


def documented_commands(text: str) -> list[Documented]:
    """``$ modelyard …`` commands of the doc's console blocks, each with the lines shown."""
    out: list[Documented] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                if lines[i].strip() and lines[i].strip() != "…":
                    shown.append(_clean(lines[i]))
                i += 1
            args = shlex.split(command, comments=True)
            assert args[0] == "modelyard", command
            out.append(Documented(args[1:], shown))
    return out


def readme_commands() -> list[list[str]]:
    section = README.read_text("utf-8").split("### Which model, which machine, what it costs")[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines() if line.strip()]


class Home:
    def __init__(self, home: Path) -> None:
        # the documented defaults: nothing in the environment may change them
        self.env: dict[str, str | None] = {
            "MODELYARD_HOME": str(home),
            "MODELYARD_DATABASE_URL": "",
            "COLUMNS": "120",
            "MODELYARD_WORKER_SLOTS": None,
            "MODELYARD_ELECTRICITY_PER_KWH": None,
        }

    def __call__(self, args: list[str]) -> str:
        result = CliRunner().invoke(app, args, env=self.env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.chdir(tmp_path)  # chargeback.html and usage.jsonl are relative paths
    (tmp_path / "usage.jsonl").write_text(
        "".join(
            json.dumps({"key": k, "team": t, "at": at, "prompt_tokens": p, "completion_tokens": c})
            + "\n"
            for k, t, at, p, c in USAGE
        )
    )
    return Home(tmp_path / "home")


def test_the_worked_example_prints_what_the_doc_shows(home: Home) -> None:
    commands = documented_commands(ADVISOR_DOC.read_text("utf-8"))
    run = [c for c in commands if not any(" ".join(c.args).startswith(m) for m in MEASURED_HERE)]
    assert len(run) >= 8
    for documented in run:
        printed = {_clean(line) for line in home(documented.args).splitlines()}
        missing = [line for line in documented.output if line not in printed]
        assert not missing, (documented.args, missing)


def test_the_readme_commands_are_the_docs_and_give_the_documented_result(home: Home) -> None:
    documented = [c.args for c in documented_commands(ADVISOR_DOC.read_text("utf-8"))]
    readme = readme_commands()
    add, recommend, compare = readme[1], readme[2], readme[3]
    # the worked example starts from exactly the README's commands
    assert add[:2] == ["hardware", "add"] and add in documented
    assert recommend[0] == "recommend" and recommend in documented
    assert compare[:2] == ["cost", "compare"] and compare in documented

    profile = json.loads(home([*add, "--json"]))
    assert profile["gpus"][0]["bandwidth_bytes_per_s"] == 3350e9  # data sheet
    assert profile["cost"]["electricity_per_kwh"] == 0.25  # the stated default

    shortlist = json.loads(home([*recommend, "--json"]))
    first = shortlist["ranked"][0]
    assert first["model"] == "llama-3.3-70b" and first["speed_known"]
    assert first["placement"]["tokens_per_second"] > 0
    known = [c["speed_known"] for c in shortlist["ranked"]]
    assert known == sorted(known, reverse=True)  # unknown speeds only after known ones
    last = shortlist["ranked"][-1]
    assert last["model"] == "mixtral-8x22b" and not last["speed_known"]

    result = json.loads(home([*compare, "--json"]))
    assert result["break_even_month"] == 15
    assert result["machines"] == 2
    assert "MODELYARD_WORKER_SLOTS" in result["throughput_source"]
    doc = ADVISOR_DOC.read_text("utf-8")
    assert "**month 15**" in doc and "break even in month 15" in README.read_text("utf-8")

    report = readme[4]
    assert report[:2] == ["cost", "report"]
    home(report)
    assert "<svg" in Path("chargeback.html").read_text("utf-8")


def test_the_slots_setting_is_the_default_concurrency(home: Home) -> None:
    readme = readme_commands()
    home(readme[1])
    home.env["MODELYARD_WORKER_SLOTS"] = "4"
    four = json.loads(home([*readme[3], "--json"]))
    explicit = json.loads(home([*readme[3], "--streams", "8", "--json"]))
    home.env["MODELYARD_WORKER_SLOTS"] = None
    eight = json.loads(home([*readme[3], "--json"]))
    assert "4 stream(s)" in four["throughput_source"]
    assert four["machine_tokens_per_month"] < eight["machine_tokens_per_month"]
    assert explicit["machine_tokens_per_month"] == eight["machine_tokens_per_month"]
    assert "MODELYARD_WORKER_SLOTS" not in explicit["throughput_source"]
