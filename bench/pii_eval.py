"""Recall and precision of modelyard's PII detector per entity type, on the labelled corpus.

Usage::

    .venv/bin/python bench/pii_eval.py                 # table + misses on stdout
    .venv/bin/python bench/pii_eval.py --json          # numbers for scripts

A finding counts as a true positive when a labelled entity of the same type has exactly the
same span; everything else the detector reports is a false positive, and every labelled
entity it did not report exactly is a miss. The results go into docs/privacy.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.entities import ENTITY_TYPES

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "governance" / "data" / "pii_corpus.jsonl"
REGIONS = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "BE", "PL", "SE")


def evaluate(corpus: Path = CORPUS, regions: tuple[str, ...] = REGIONS) -> dict[str, Any]:
    analyzer = Analyzer(regions)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: list[dict[str, Any]] = []
    false_positives: list[dict[str, Any]] = []
    rows = [json.loads(line) for line in corpus.read_text("utf-8").splitlines() if line.strip()]
    started = time.perf_counter()
    for row in rows:
        truth = {(e["type"], e["start"], e["end"]) for e in row["entities"]}
        found = {(e.type, e.start, e.end) for e in analyzer.find(row["text"])}
        for kind, _start, _end in truth & found:
            tp[kind] += 1
        for kind, start, end in found - truth:
            fp[kind] += 1
            false_positives.append({"id": row["id"], "type": kind, "text": row["text"][start:end]})
        for kind, start, end in truth - found:
            fn[kind] += 1
            misses.append({"id": row["id"], "type": kind, "text": row["text"][start:end]})
    elapsed = time.perf_counter() - started
    per_type = {}
    for kind in ENTITY_TYPES:
        labelled = tp[kind] + fn[kind]
        reported = tp[kind] + fp[kind]
        per_type[kind] = {
            "labelled": labelled,
            "tp": tp[kind],
            "fp": fp[kind],
            "fn": fn[kind],
            "recall": tp[kind] / labelled if labelled else None,
            "precision": tp[kind] / reported if reported else None,
        }
    return {
        "sentences": len(rows),
        "languages": sorted({r["lang"] for r in rows} - {"xx"}),
        "per_type": per_type,
        "misses": misses,
        "false_positives": false_positives,
        "ms_per_sentence": 1000 * elapsed / max(1, len(rows)),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['sentences']} sentences, languages: {', '.join(result['languages'])}; "
        f"{result['ms_per_sentence']:.2f} ms per sentence.",
        "",
        "| entity | labelled | found right | false positives | missed | recall | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, r in result["per_type"].items():
        lines.append(
            f"| {kind} | {r['labelled']} | {r['tp']} | {r['fp']} | {r['fn']} | "
            f"{_pct(r['recall'])} | {_pct(r['precision'])} |"
        )
    lines += ["", "Misses:", ""]
    lines += [f"- #{m['id']} {m['type']}: `{m['text']}`" for m in result["misses"]] or ["- none"]
    lines += ["", "False positives:", ""]
    lines += [f"- #{f['id']} {f['type']}: `{f['text']}`" for f in result["false_positives"]] or [
        "- none"
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    result = evaluate(args.corpus)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else markdown(result)) + "\n")


if __name__ == "__main__":
    main()
