"""One federated site round on the default model: training, determinism, refusals, FedProx, merge.

Kept tiny: 8 rows of the demo tickets, rank 4 on the last 2 blocks, 2 steps of 4 rows,
sequences under 48 tokens, one thread. The base is built once for the starting adapter, then
once per round (each round is a whole ``main`` call, as a site runs it).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.intake.gguf_reader import read_gguf_metadata
from modelyard.tune.data import file_sha256
from modelyard.tune.federated.site_round import (
    RESULT,
    Arrays,
    initial_adapter,
    main,
    merge_adapter,
    read_adapter,
    read_spec,
    write_adapter,
)
from modelyard.tune.gguf_file import GGUFFile

DEMO = Path(__file__).resolve().parents[2] / "examples" / "tune-demo" / "train.jsonl"
RECIPE: dict[str, Any] = {
    "rank": 4,
    "alpha": 8,
    "dropout": 0.0,
    "target_modules": ["q_proj", "v_proj", "gate_proj"],
    "layers": 2,
    "lr": 2e-3,
    "batch_size": 4,
    "max_seq_len": 48,
    "steps": 2,
    "seed": 0,
    "threads": 1,
}


@dataclass(frozen=True)
class Site:
    root: Path
    base: Path
    metadata: Path
    data: Path
    adapter_in: Path
    initial: Arrays

    def spec(self, name: str, **overrides: Any) -> Path:
        """Write a round spec whose outputs go to ``root/name/``; returns its path."""
        spec: dict[str, Any] = {
            "base": str(self.base),
            "metadata": str(self.metadata),
            "data": str(self.data),
            "adapter_in": str(self.adapter_in),
            "adapter_out": str(self.root / name / "adapter-out.npz"),
            "round": 1,
            "site": "north",
            "proximal_mu": 0.0,
            "recipe": RECIPE,
            **overrides,
        }
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(spec))
        return path


def _out(spec: Path) -> tuple[Arrays, dict[str, Any]]:
    out = Path(json.loads(spec.read_text())["adapter_out"])
    return read_adapter(out), json.loads((out.parent / RESULT).read_text())


def _distance(a: Arrays, b: Arrays) -> float:
    return math.sqrt(sum(float(((a[k] - b[k]) ** 2).sum()) for k in a))


@pytest.fixture(scope="module")
def site(default_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    metadata = root / "base-metadata.json"
    meta = read_gguf_metadata(default_gguf, timeout_s=60, memory_mb=2048)
    metadata.write_text(json.dumps(meta, default=str))
    data = root / "north.jsonl"
    data.write_text("".join(DEMO.read_text().splitlines(keepends=True)[:8]))
    initial = initial_adapter(default_gguf, RECIPE, seed=7)
    adapter_in = write_adapter(root / "init.npz", initial)
    return Site(root, default_gguf, metadata, data, adapter_in, initial)


@pytest.fixture(scope="module")
def first_round(site: Site) -> Path:
    spec = site.spec("first")
    assert main([str(spec)]) == 0
    return spec


@pytest.mark.slow
def test_initial_adapter_is_lora_a_drawn_and_b_zero(site: Site) -> None:
    names = list(site.initial)
    assert names == sorted(names) and len(names) == 2 * 2 * 3  # A and B, 2 blocks, 3 modules
    assert all(a.dtype == np.float32 for a in site.initial.values())
    assert all(".lora_A." in n or ".lora_B." in n for n in names)
    assert all(not a.any() for n, a in site.initial.items() if ".lora_B." in n)
    assert all(a.any() for n, a in site.initial.items() if ".lora_A." in n)
    assert all(".layers.16." in n or ".layers.17." in n for n in names)  # the last two blocks


@pytest.mark.slow
def test_a_round_trains_the_adapter_and_reports_the_data(site: Site, first_round: Path) -> None:
    arrays, result = _out(first_round)
    assert list(arrays) == list(site.initial)  # same keys, same (sorted) order
    assert all(arrays[k].dtype == np.float32 for k in arrays)
    assert all(arrays[k].shape == site.initial[k].shape for k in arrays)
    assert _distance(arrays, site.initial) > 0
    assert any(arrays[k].any() for k in arrays if ".lora_B." in k)  # B moved off zero
    assert result["examples"] == 8 and result["sha256"] == file_sha256(site.data)
    assert result["steps"] == 2 and result["tokens"] > 0
    assert math.isfinite(result["train_loss"]) and result["train_loss"] > 0


@pytest.mark.slow
def test_the_same_spec_gives_the_same_output_as_a_child_process(
    site: Site, first_round: Path
) -> None:
    spec = site.spec("again")
    done = subprocess.run(
        [sys.executable, "-m", "modelyard.tune.federated.site_round", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    arrays, result = _out(spec)
    expected, expected_result = _out(first_round)
    assert list(arrays) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(arrays[key], expected[key])
    assert result == expected_result


@pytest.mark.slow
def test_an_adapter_with_the_wrong_keys_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = dict(site.initial)
    dropped = sorted(arrays)[0]
    arrays.pop(dropped)
    arrays["base_model.model.lm_head.lora_A.default.weight"] = np.zeros((4, 4), np.float32)
    wrong = write_adapter(site.root / "wrong.npz", arrays)
    spec = site.spec("wrong", adapter_in=str(wrong))
    assert main([str(spec)]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]  # after llama.cpp's chatter
    assert message.startswith("error: the adapter's keys do not match")
    assert f"1 missing ({dropped})" in message and "1 unknown (base_model.model.lm_head" in message
    assert not (site.root / "wrong").exists()


@pytest.mark.slow
def test_a_proximal_term_keeps_the_round_closer_to_the_global_adapter(
    site: Site, first_round: Path
) -> None:
    spec = site.spec("fedprox", proximal_mu=10.0)
    assert main([str(spec)]) == 0
    proximal, result = _out(spec)
    plain, plain_result = _out(first_round)
    assert _distance(proximal, site.initial) < 0.9 * _distance(plain, site.initial)
    # The pull is zero on the first step (w = w_in): the second step's loss is the same.
    assert result["train_loss"] == plain_result["train_loss"]


@pytest.mark.slow
def test_merge_adapter_writes_a_gguf_with_the_adapter_merged(site: Site, first_round: Path) -> None:
    arrays, _ = _out(first_round)
    merged = merge_adapter(site.base, RECIPE, arrays, site.root / "merged-f16.gguf")
    with GGUFFile(site.base) as before, GGUFFile(merged) as after:
        assert [t.name for t in after.tensors] == [t.name for t in before.tensors]
        assert after.get("general.file_type") == 1
        assert after.get("tokenizer.ggml.tokens") == before.get("tokenizer.ggml.tokens")

        def change(name: str) -> float:
            old = before.dequantized(before.tensor(name))
            new = after.dequantized(after.tensor(name))
            return float(np.abs(new - old).max() / np.abs(old).max())

        assert change("blk.17.attn_q.weight") > 1e-3  # adapted
        assert change("blk.0.attn_q.weight") < 1e-3  # not adapted: F16 rounding only
    assert not list(site.root.glob(".merged-f16.gguf.*"))


# The spec is refused before any model is built.


def _spec(tmp_path: Path, **fields: Any) -> Path:
    for name in ("base.gguf", "meta.json", "data.jsonl", "in.npz"):
        (tmp_path / name).write_text("x")
    spec = {
        "base": str(tmp_path / "base.gguf"),
        "metadata": str(tmp_path / "meta.json"),
        "data": str(tmp_path / "data.jsonl"),
        "adapter_in": str(tmp_path / "in.npz"),
        "adapter_out": str(tmp_path / "out" / "adapter-out.npz"),
        "round": 2,
        "site": "north",
        "proximal_mu": 0.5,
        "recipe": RECIPE,
    }
    spec.update(fields)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({k: v for k, v in spec.items() if v is not ...}))
    return path


def test_a_valid_spec_is_read_with_its_recipe(tmp_path: Path) -> None:
    spec = read_spec(_spec(tmp_path))
    assert spec.round == 2 and spec.site == "north" and spec.proximal_mu == 0.5
    assert spec.steps == 2 and spec.recipe.max_steps == 2 and spec.recipe.rank == 4
    assert spec.recipe.target_modules == ("q_proj", "v_proj", "gate_proj")
    assert spec.adapter_out == tmp_path / "out" / "adapter-out.npz"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"data": "/no/such/rows.jsonl"}, "data: no such file: /no/such/rows.jsonl"),
        ({"adapter_in": ...}, "missing field(s) adapter_in"),
        ({"proximal-mu": 0.1}, "unknown field(s) proximal-mu"),
        ({"round": "1"}, 'round must be an integer, not "1"'),
        ({"round": 0}, "round must be at least 1"),
        ({"proximal_mu": -1}, "proximal_mu must be >= 0"),
        ({"recipe": {**RECIPE, "rnak": 4}}, "recipe: unknown field(s) rnak"),
        ({"recipe": {**RECIPE, "rank": 0}}, "recipe: --rank must be at least 1"),
        ({"recipe": {**RECIPE, "lr": None}}, "recipe: lr must be a finite number, not null"),
        ({"recipe": {k: v for k, v in RECIPE.items() if k != "steps"}}, "missing field steps"),
    ],
)
def test_a_bad_spec_is_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], expected: str
) -> None:
    assert main([str(_spec(tmp_path, **fields))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err


def test_a_missing_spec_file_and_a_wrong_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nope.json")]) == 1
    assert "error: no such spec file" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
