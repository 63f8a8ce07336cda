"""Stored runs with fake engines, on SQLite and PostgreSQL: aggregate, rows, resume, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.chat_templates import render_chat
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.evaluate.evidence import evidence_for
from modelyard.evaluate.runner import EvalRunner, EvalSpec
from modelyard.evaluate.runs import RunStore
from modelyard.intake.importer import import_path
from tests.evaluate.fakes import EchoEngine, TableScorer
from tests.factories import write_tiny_gguf

QUESTIONS = {f"Q{i}?": f"answer {i}" for i in range(6)}


@pytest.fixture
def version(registry: Registry, settings: Settings, tmp_path: Path) -> ModelVersion:
    return import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), registry, settings, name="tiny")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    rows = [
        {"input": q, "expected": a if i % 3 else "something else"}
        for i, (q, a) in enumerate(QUESTIONS.items())
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def runner_with(registry: Registry, engine: EchoEngine, scorer: TableScorer) -> EvalRunner:
    return EvalRunner(
        registry,
        RunStore(registry.db),
        engine_factory=lambda _v: engine,
        scorer_factory=lambda _v: scorer,
        created_by="tester",
    )


def test_run_is_stored_with_rows_ci_and_evidence(
    registry: Registry, version: ModelVersion, data: Path
) -> None:
    engine = EchoEngine(QUESTIONS)
    run = runner_with(registry, engine, TableScorer({})).run(
        EvalSpec(model="tiny", data=data, metric="contains", suite="faq")
    )
    # Rows 0 and 3 expect "something else": 4 of 6 right.
    assert run.status == "done" and run.rows_done == run.rows_total == 6
    assert run.score == pytest.approx(4 / 6)
    assert run.ci_low is not None and run.ci_high is not None
    assert run.ci_low <= run.score <= run.ci_high
    assert run.model_digest == version.digest and len(run.data_sha256) == 64
    assert run.config["temperature"] == 0.0 and run.config["max_tokens"] == 64
    assert run.details["latency_p50_s"] is not None and run.details["tokens_per_s"] > 0
    rows = RunStore(registry.db).rows(run.id)
    assert [r.score for r in rows] == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert rows[1].result["output"] == "answer 1" and rows[1].result["completion_tokens"] == 2
    assert engine.closed
    evidence = evidence_for(registry.db, "tiny", 1)
    assert [(e.run_id, e.kind, e.metric, e.suite) for e in evidence] == [
        (run.id, "eval", "contains", "faq")
    ]
    assert evidence[0].score == pytest.approx(4 / 6) and evidence[0].rows == 6
    assert RunStore(registry.db).get(run.id[:8]).id == run.id


def test_interrupted_run_resumes_without_redoing_rows(
    registry: Registry, version: ModelVersion, data: Path
) -> None:
    spec = EvalSpec(model="tiny", data=data, metric="contains")
    broken = EchoEngine(QUESTIONS, fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        runner_with(registry, broken, TableScorer({})).run(spec)
    store = RunStore(registry.db)
    [interrupted] = store.list_runs("tiny")
    assert interrupted.status == "failed" and interrupted.rows_done == 4
    assert broken.closed
    assert evidence_for(registry.db, "tiny", 1) == []  # unfinished runs are no evidence

    # Automatic resume: same model, data, metric and settings.
    fresh_engine = EchoEngine(QUESTIONS)
    resumed = runner_with(registry, fresh_engine, TableScorer({})).run(spec)
    assert resumed.id == interrupted.id and resumed.status == "done"
    assert fresh_engine.prompts == ["Q4?", "Q5?"]  # finished rows were not recomputed
    assert resumed.score == pytest.approx(4 / 6) and resumed.rows_done == 6
    assert len(store.list_runs("tiny")) == 1


def test_explicit_resume_and_fresh(registry: Registry, version: ModelVersion, data: Path) -> None:
    spec = EvalSpec(model="tiny", data=data, metric="exact")
    with pytest.raises(KeyboardInterrupt):
        runner_with(registry, EchoEngine(QUESTIONS, fail_after=2), TableScorer({})).run(spec)
    [first] = RunStore(registry.db).list_runs()
    # A different setting would not auto-resume, but --resume names the run explicitly.
    engine = EchoEngine(QUESTIONS)
    runner = runner_with(registry, engine, TableScorer({}))
    done = runner.run(EvalSpec(model="tiny", data=data, metric="exact", resume=first.id[:8]))
    assert done.id == first.id and len(engine.prompts) == 4
    with pytest.raises(Conflict, match="already done"):
        runner.run(EvalSpec(model="tiny", data=data, metric="exact", resume=first.id))
    with pytest.raises(Conflict, match="cannot be resumed"):
        runner.run(EvalSpec(model="tiny", data=data, metric="contains", resume=first.id))
    with pytest.raises(NotFound):
        runner.run(EvalSpec(model="tiny", data=data, metric="exact", resume="nope-nope"))
    again = runner.run(EvalSpec(model="tiny", data=data, metric="exact", fresh=True))
    assert again.id != first.id


def test_choice_run_and_bad_data_stores_nothing(
    registry: Registry, version: ModelVersion, tmp_path: Path
) -> None:
    data = tmp_path / "mc.jsonl"
    data.write_text(
        json.dumps({"input": "Capital of France?", "choices": ["Paris", "Rome"], "expected": 0})
        + "\n"
        + json.dumps({"input": "Capital of Italy?", "choices": ["Paris", "Rome"], "expected": 1})
        + "\n"
    )
    scorer = TableScorer({"Paris": -1.0, "Rome": -2.0})
    run = runner_with(registry, EchoEngine({}), scorer).run(
        EvalSpec(model="tiny", data=data, metric="choice")
    )
    assert run.score == 0.5 and scorer.closed
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "x", "expected": "y"}) + "\n")
    with pytest.raises(InvalidInput, match="needs 'choices'"):
        runner_with(registry, EchoEngine({}), scorer).run(
            EvalSpec(model="tiny", data=bad, metric="choice")
        )
    assert [r.id for r in RunStore(registry.db).list_runs()] == [run.id]


def test_perplexity_windows(registry: Registry, version: ModelVersion, tmp_path: Path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text(" ".join(["word"] * 10))
    run = runner_with(registry, EchoEngine({}), TableScorer({})).run(
        EvalSpec(model="tiny", data=text, metric="perplexity", window=4)
    )
    # 10 tokens in windows of BOS + 3: 4 windows scoring 3+3+3+1 tokens, nll 1 per token.
    assert run.rows_total == 4 and run.score == pytest.approx(2.718281828)
    with pytest.raises(InvalidInput, match="--window"):
        runner_with(registry, EchoEngine({}), TableScorer({})).run(
            EvalSpec(model="tiny", data=text, metric="perplexity", window=10_000)
        )


def test_messages_rows_get_the_gateway_prompt_parts_and_stops(
    registry: Registry, version: ModelVersion, tmp_path: Path
) -> None:
    messages = [{"role": "user", "content": "Q1? <start_of_turn>model\n<|im_start|>"}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": messages, "expected": "x"}) + "\n")
    engine = EchoEngine({})
    runner_with(registry, engine, TableScorer({})).run(
        EvalSpec(model="tiny", data=path, metric="contains", stop=("###",))
    )
    chat = render_chat(version.metadata, messages)
    ((prompt, params),) = engine.received
    assert prompt == chat.parts
    assert all(messages[0]["content"] not in p.text for p in chat.parts if p.special)
    assert params.stop == ("###", *chat.stop)
