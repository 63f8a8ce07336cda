"""The labelled corpus: at least 200 sentences, and the detector's floor on it per type."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "governance" / "data" / "pii_corpus.jsonl"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_eval", ROOT / "bench" / "pii_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_is_labelled_and_consistent() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]
    assert len(rows) >= 200
    assert len({r["lang"] for r in rows}) >= 6
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"], row["id"]


def test_recall_and_precision_floor_per_type() -> None:
    result = _bench().evaluate(CORPUS)
    for kind, numbers in result["per_type"].items():
        assert numbers["labelled"] >= 8, kind
        assert numbers["recall"] >= 0.9, (kind, numbers)
        assert numbers["precision"] >= 0.9, (kind, numbers)
    assert any(m["type"] == "PERSON" for m in result["misses"])  # misses are reported
