"""Recall and precision of modelyard's PII detector per entity type and per form, on the
labelled recall corpus (``tests/governance/data/pii_recall_corpus.jsonl``).

Usage::

    .venv/bin/python bench/pii_recall.py                 # tables + misses on stdout
    .venv/bin/python bench/pii_recall.py --json          # numbers for scripts

A finding is a true positive when a labelled entity of the same type has exactly the same
span; everything else the detector reports is a false positive (the corpus' negative
sentences — order numbers, ISBNs, versions, digests, dates, prices — have no labels, so
anything found there counts against precision), and every labelled entity not reported
exactly is a miss. The numbers are recorded in docs/privacy.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.entities import ENTITY_TYPES

CORPUS = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "governance"
    / "data"
    / "pii_recall_corpus.jsonl"
)
REGIONS = ("US", "GB", "DE", "FR")  # the default MODELYARD_PII_PHONE_REGIONS


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def evaluate(corpus: Path = CORPUS, regions: tuple[str, ...] = REGIONS) -> dict[str, Any]:
    analyzer = Analyzer(regions)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    form_total: Counter[str] = Counter()
    form_found: Counter[str] = Counter()
    form_type: dict[str, str] = {}
    misses: list[dict[str, Any]] = []
    false_positives: list[dict[str, Any]] = []
    rows = [json.loads(line) for line in corpus.read_text("utf-8").splitlines() if line.strip()]
    for row in rows:
        forms = {(e["type"], e["start"], e["end"]): e["form"] for e in row["entities"]}
        truth = set(forms)
        found = {(e.type, e.start, e.end) for e in analyzer.find(row["text"])}
        for key, form in forms.items():
            form_total[form] += 1
            form_type[form] = key[0]
            form_found[form] += key in found
        for kind, _start, _end in truth & found:
            tp[kind] += 1
        for kind, start, end in sorted(found - truth):
            fp[kind] += 1
            false_positives.append({"id": row["id"], "type": kind, "text": row["text"][start:end]})
        for kind, start, end in sorted(truth - found):
            fn[kind] += 1
            misses.append(
                {
                    "id": row["id"],
                    "type": kind,
                    "form": forms[(kind, start, end)],
                    "text": row["text"][start:end],
                }
            )
    per_type = {
        kind: {
            "labelled": tp[kind] + fn[kind],
            "tp": tp[kind],
            "fp": fp[kind],
            "fn": fn[kind],
            "recall": _ratio(tp[kind], tp[kind] + fn[kind]),
            "precision": _ratio(tp[kind], tp[kind] + fp[kind]),
        }
        for kind in ENTITY_TYPES
    }
    per_form = {
        form: {
            "type": form_type[form],
            "labelled": form_total[form],
            "found": form_found[form],
            "recall": _ratio(form_found[form], form_total[form]),
        }
        for form in sorted(form_total, key=lambda f: (ENTITY_TYPES.index(form_type[f]), f))
    }
    return {
        "sentences": len(rows),
        "negative_sentences": sum(1 for r in rows if not r["entities"]),
        "spans": sum(len(r["entities"]) for r in rows),
        "per_type": per_type,
        "per_form": per_form,
        "misses": misses,
        "false_positives": false_positives,
        "random_numbers": random_numbers(analyzer),
    }


def random_numbers(
    analyzer: Analyzer, lengths: range = range(8, 17), per_length: int = 400, seed: int = 5
) -> dict[int, dict[str, float]]:
    """Share of random digit strings of each length (in a neutral sentence) reported as
    PII, per type: an estimate of the false-positive rate on numbers that is not tuned on
    the corpus (the checksums decide alone)."""
    rng = random.Random(seed)
    rates: dict[int, dict[str, float]] = {}
    for length in lengths:
        hits: Counter[str] = Counter()
        for _ in range(per_length):
            digits = "".join(rng.choice("0123456789") for _ in range(length))
            hits.update({e.type for e in analyzer.find(f"The counter read {digits} at noon.")})
        rates[length] = {kind: count / per_length for kind, count in sorted(hits.items())}
    return rates


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['sentences']} sentences ({result['negative_sentences']} without PII), "
        f"{result['spans']} labelled spans.",
        "",
        "| entity | labelled | found right | false positives | missed | recall | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, r in result["per_type"].items():
        lines.append(
            f"| {kind} | {r['labelled']} | {r['tp']} | {r['fp']} | {r['fn']} | "
            f"{_pct(r['recall'])} | {_pct(r['precision'])} |"
        )
    lines += [
        "",
        "| form | entity | labelled | found | recall |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for form, r in result["per_form"].items():
        lines.append(
            f"| {form} | {r['type']} | {r['labelled']} | {r['found']} | {_pct(r['recall'])} |"
        )
    lines += ["", "| random digits | reported as PII |", "| ---: | --- |"]
    for length, rates in result["random_numbers"].items():
        shown = ", ".join(f"{kind} {_pct(rate)}" for kind, rate in rates.items()) or "none"
        lines.append(f"| {length} | {shown} |")
    lines += ["", "Misses:", ""]
    lines += [
        f"- #{m['id']} {m['type']} ({m['form']}): `{m['text']!r}`" for m in result["misses"]
    ] or ["- none"]
    lines += ["", "False positives:", ""]
    lines += [f"- #{f['id']} {f['type']}: `{f['text']!r}`" for f in result["false_positives"]] or [
        "- none"
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"no corpus at {args.corpus}")
    result = evaluate(args.corpus)
    sys.stdout.write((json.dumps(result, indent=2) if args.json else markdown(result)) + "\n")


if __name__ == "__main__":
    main()
