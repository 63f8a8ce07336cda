"""The lm-evaluation-harness adapter: unit behaviour with fakes, and a real offline lm-eval run
of a tiny local task on the default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from modelyard.config import Settings
from modelyard.engines.fake import FakeEngine
from modelyard.intake.default_model import import_default
from tests.evaluate.fakes import TableScorer


def test_adapter_methods_with_fakes(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from modelyard.catalog.registry import Registry
    from modelyard.evaluate.lm_eval_adapter import MODEL_NAME, ModelyardLM, register
    from modelyard.intake.importer import import_path
    from modelyard.store.blobs import open_blob_store
    from modelyard.store.database import Database
    from tests.factories import write_tiny_gguf

    monkeypatch.setenv("MODELYARD_HOME", str(sqlite_settings.home))
    db = Database(sqlite_settings.resolved_database_url)
    import_path(
        write_tiny_gguf(tmp_path / "t.gguf"),
        Registry(db, open_blob_store(sqlite_settings), sqlite_settings),
        sqlite_settings,
        name="tiny",
    )
    db.close()
    engine = FakeEngine("four five. six")
    scorer = TableScorer({"Paris": -0.5, "Rome": -4.0})
    lm = ModelyardLM(model="tiny", engines=lambda _v: engine, scorers=lambda _v: scorer)
    ask = [
        SimpleNamespace(args=("Capital:", " Paris")),
        SimpleNamespace(args=("Capital:", " Rome")),
    ]
    assert lm.loglikelihood(ask) == [(-0.5, False), (-4.0, False)]
    generated = lm.generate_until([SimpleNamespace(args=("one two three", {"until": ["."]}))])
    assert generated == ["four five"]
    # TableScorer: nll 1 per scored token; 3 words -> 3 tokens after BOS.
    assert lm.loglikelihood_rolling([SimpleNamespace(args=("a b c",))]) == [-3.0]
    lm.close()
    assert engine.closed and scorer.closed
    register()
    register()  # idempotent
    from lm_eval.api.registry import get_model

    assert get_model(MODEL_NAME) is ModelyardLM


@pytest.mark.slow
def test_lm_eval_runs_a_local_task_offline(tmp_path: Path, sqlite_settings: Settings) -> None:
    from modelyard.catalog.registry import Registry
    from modelyard.store.blobs import open_blob_store
    from modelyard.store.database import Database

    db = Database(sqlite_settings.resolved_database_url)
    import_default(Registry(db, open_blob_store(sqlite_settings), sqlite_settings), sqlite_settings)
    db.close()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.jsonl").write_text(
        json.dumps(
            {
                "question": "What is the capital of France?",
                "choices": ["Paris", "a bicycle"],
                "answer": 0,
            }
        )
        + "\n"
        + json.dumps(
            {
                "question": "How many days are in a week?",
                "choices": ["purple", "seven"],
                "answer": 1,
            }
        )
        + "\n"
    )
    (tasks / "tiny.yaml").write_text(
        "task: modelyard_tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {tasks / 'tiny.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "Question: {{question}}\\nAnswer:"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    env = {
        **os.environ,
        "MODELYARD_HOME": str(sqlite_settings.home),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    env.pop("MODELYARD_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.evaluate.lm_eval_adapter", "run",
         "--model", "modelyard", "--model_args", "model=gemma3-270m",
         "--tasks", "modelyard_tiny_mc", "--include_path", str(tasks),
         "--output_path", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=500, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [result_file] = list((tmp_path / "out").rglob("results_*.json"))
    results = json.loads(result_file.read_text())["results"]["modelyard_tiny_mc"]
    assert results["acc,none"] == 1.0
