"""``pilot run`` checks every input before the first model runs: one error lists every
problem, the exit code is 1, and nothing is run, stored or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.errors import InvalidInput
from modelyard.evaluate.pilot import parse_models, plan_pilot, run_pilot
from modelyard.evaluate.runner import EvalRunner, EvalSpec
from modelyard.evaluate.runs import RunStore
from tests.evaluate.fakes import EchoEngine, TableScorer
from tests.factories import make_hf_directory, write_tiny_gguf
from tests.lifecycle.helpers import add_version


def rows_file(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec(data: Path, metric: str = "contains", schema: dict[str, object] | None = None) -> EvalSpec:
    return EvalSpec(model="", data=data, metric=metric, suite="pilot:Pilot", schema=schema)


def refused(registry: Registry, models: str, spec_: EvalSpec, out: Path, **kw: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        plan_pilot(registry, parse_models(models), spec_, out, **kw)
    return caught.value.message


def test_every_problem_is_listed_in_one_error(registry: Registry, tmp_path: Path) -> None:
    add_version(registry, "a")
    add_version(registry, "emb", fmt="safetensors")
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"input": "q", "expected": "x"}) + "\n{broken\n")
    out = tmp_path / "report"
    out.write_text("a file where the report folder should go")
    message = refused(registry, "a,missing,emb", spec(data), out)
    assert message.startswith("pilot not started, nothing was run or written (4 problems):")
    lines = message.splitlines()[1:]
    assert lines == [
        "  - --models: missing: no model named 'missing'",
        "  - --models: emb is emb@1, a safetensors model; pilots run GGUF models",
        "  - --data: rows.jsonl:2: not valid JSON (Expecting property name enclosed in double "
        "quotes)",
        f"  - --out: {out} exists and is not a folder",
    ]


def test_metric_schema_and_missing_files(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    message = refused(
        registry,
        " , ",
        spec(tmp_path / "absent.jsonl", metric="bleu"),
        tmp_path / "a-file" / "report",
        schema_problem="cannot read the JSON schema s.json: not JSON",
    )
    assert "(5 problems)" in message
    assert "--models: no model named (give A,B,…)" in message
    assert "--schema: cannot read the JSON schema s.json: not JSON" in message
    assert "--metric: unknown metric 'bleu'; choose one of: exact, contains" in message
    assert f"--data: no such data file: {tmp_path / 'absent.jsonl'}" in message
    assert f"cannot be created: {tmp_path / 'a-file'} is not a folder" in message


def test_rows_are_checked_against_the_metric(registry: Registry, tmp_path: Path) -> None:
    add_version(registry, "a")
    data = rows_file(tmp_path / "mc.jsonl", [{"input": "q", "expected": "x"}])
    message = refused(registry, "a", spec(data, metric="choice"), tmp_path / "out")
    assert "(1 problem)" in message
    assert "--data: row 0: the choice metric needs 'choices' on every row" in message
    schema_rows = rows_file(tmp_path / "js.jsonl", [{"input": "q", "expected": None}])
    with_schema = spec(schema_rows, metric="json-schema-valid", schema={"type": "object"})
    plan = plan_pilot(registry, ["a"], with_schema, tmp_path / "out")  # --schema fills the rows
    assert [v.ref for _, v in plan.models] == ["a@1"]
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert "has no text to score" in refused(
        registry, "a", spec(empty, metric="perplexity"), tmp_path / "out"
    )


def test_an_unwritable_report_folder_is_refused(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission bits do not stop root, so the check's answer for one folder is faked."""
    add_version(registry, "a")
    data = rows_file(tmp_path / "q.jsonl", [{"input": "q", "expected": "x"}])
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        "modelyard.evaluate.pilot.os.access",
        lambda path, mode: Path(path) != locked and real_access(path, mode),
    )
    message = refused(registry, "a", spec(data), locked / "new" / "report")
    assert f"--out: {locked / 'new' / 'report'} cannot be created: {locked} is not writable" in (
        message
    )
    assert f"--out: the folder {locked} is not writable" in refused(
        registry, "a", spec(data), locked
    )


def test_a_checked_pilot_runs_each_version_it_resolved(registry: Registry, tmp_path: Path) -> None:
    add_version(registry, "a")
    add_version(registry, "b")
    registry.set_alias("chat", "b@1", actor="tests")
    data = rows_file(
        tmp_path / "q.jsonl",
        [{"input": "Q1?", "expected": "one"}, {"input": "Q2?", "expected": "two"}],
    )
    out = tmp_path / "new" / "report"
    plan = plan_pilot(registry, ["a", "chat"], spec(data), out)
    assert [(n, v.ref) for n, v in plan.models] == [("a", "a@1"), ("chat", "b@1")]
    assert not out.exists()  # checking writes nothing
    engine = EchoEngine({"Q1?": "one", "Q2?": "three"})
    runner = EvalRunner(
        registry,
        RunStore(registry.db),
        engine_factory=lambda _v: engine,
        scorer_factory=lambda _v: TableScorer({}),
        created_by="tester",
    )
    runs = run_pilot(runner, plan, lambda _name: nullcontext(lambda _done, _total: None))
    assert [(r.model_ref, r.score, r.suite) for r in runs] == [
        ("a@1", 0.5, "pilot:Pilot"),
        ("b@1", 0.5, "pilot:Pilot"),
    ]


def modelyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_the_command_refuses_before_the_first_model_runs(tmp_path: Path) -> None:
    """The first model is a GGUF that no engine can load: had it been run, the error would
    be its load failure. The pilot stops on the missing second model first."""
    home = tmp_path / "home"
    gguf = write_tiny_gguf(tmp_path / "t.gguf")
    assert modelyard(home, "models", "import", str(gguf), "--name", "first").returncode == 0
    folder = make_hf_directory(tmp_path / "hf")
    assert modelyard(home, "models", "import", str(folder), "--name", "emb").returncode == 0
    data = rows_file(tmp_path / "faq.jsonl", [{"input": "Q?", "expected": "A"}])
    out = tmp_path / "pilot-report"
    done = modelyard(
        home, "pilot", "run", "--models", "first,llama3.2-1b,emb", "--data", str(data),
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "pilot not started, nothing was run or written (2 problems)" in done.stderr
    assert "llama3.2-1b: no model named 'llama3.2-1b'" in done.stderr
    assert "emb is emb@1, a safetensors model" in done.stderr
    assert "Traceback" not in done.stderr and "load" not in done.stderr
    assert not out.exists()
    assert json.loads(modelyard(home, "eval", "list", "--json").stdout) == []
