"""A real LoRA run on the default model: lineage, resume, merged weights, llama.cpp serving."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from modelyard.engines.base import SamplingParams, collect
from modelyard.engines.chat_templates import render_chat
from modelyard.engines.loader import open_engine
from modelyard.tune.data import file_sha256
from modelyard.tune.gguf_file import GGUFFile
from tests.tune.tuned import TunedModel


def test_tuned_version_is_registered_with_full_lineage(tuned_model: TunedModel) -> None:
    version = tuned_model.outcome.version
    base = tuned_model.registry.get("gemma3-270m@1")
    assert version.ref == "ticket-router@1"
    assert version.origin == "tuned" and version.parent == "gemma3-270m@1"
    assert version.format == "gguf" and version.metadata["quantization"] == "F16"
    lineage = version.lineage
    assert lineage["base"] == "gemma3-270m@1" and lineage["base_digest"] == base.digest
    assert lineage["data"]["sha256"] == file_sha256(tuned_model.data_path)
    assert lineage["data"]["rows"] == 6 and lineage["eval_data"]["rows"] == 2
    hyper = lineage["hyperparameters"]
    assert hyper["rank"] == 2 and hyper["alpha"] == 4 and hyper["lr"] == 2e-3
    assert hyper["target_modules"] == ["q_proj", "v_proj"] and hyper["layers"] == 2
    assert hyper["max_seq_len"] == 48 and hyper["batch_size"] == 2 and hyper["seed"] == 3
    assert lineage["steps"] == 4
    for key in ("train_loss", "eval_loss_before", "eval_loss_after", "duration_s"):
        assert math.isfinite(lineage[key]) and lineage[key] > 0, key
    assert lineage["tokens_per_s"] > 0 and lineage["tokens_trained"] > 0
    libraries = lineage["libraries"]
    assert libraries["torch"].startswith("2.13.0")
    assert {"transformers", "peft", "gguf", "llama_cpp_python"} <= set(libraries)


def test_resolved_config_and_adapter_are_saved_beside_the_output(
    tuned_model: TunedModel,
) -> None:
    run_dir = tuned_model.outcome.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config == {**tuned_model.recipe.to_json(), "base_digest": config["base_digest"]}
    result = json.loads((run_dir / "result.json").read_text())
    assert result["version"] == "ticket-router@1"
    assert (run_dir / "adapter.safetensors").stat().st_size > 0
    assert not (run_dir / "checkpoint.pt").exists()  # a finished run leaves no checkpoint
    assert not list(run_dir.glob("*.gguf")) and not list(run_dir.glob(".*part"))


def test_resume_continues_from_the_checkpoint_not_from_zero(tuned_model: TunedModel) -> None:
    assert tuned_model.checkpoint_existed
    assert tuned_model.interrupted_steps == [1, 2, 3]
    # The checkpoint was written after step 2: the resumed run redoes step 3, then step 4.
    assert tuned_model.resumed_steps == [3, 4]
    result = tuned_model.outcome.result
    assert (
        result.resumed_from == 2 and tuned_model.outcome.version.lineage["resumed_from_step"] == 2
    )
    assert result.losses[:2] == tuned_model.interrupted_losses[:2]
    # Same step, same batch, same restored weights: step 3 repeats its loss exactly.
    assert math.isclose(result.losses[2], tuned_model.interrupted_losses[2], rel_tol=1e-5)


def test_merge_changed_only_the_adapted_weights(tuned_model: TunedModel) -> None:
    blobs = tuned_model.registry.blobs
    base = tuned_model.registry.get("gemma3-270m@1")
    tuned = tuned_model.outcome.version
    with (
        GGUFFile(blobs.path_for(base.digest)) as before,
        GGUFFile(blobs.path_for(tuned.digest)) as after,
    ):
        assert [t.name for t in before.tensors] == [t.name for t in after.tensors]
        assert after.get("tokenizer.ggml.tokens") == before.get("tokenizer.ggml.tokens")

        def change(name: str) -> float:
            old = before.dequantized(before.tensor(name))
            new = after.dequantized(after.tensor(name))
            return float(np.abs(new - old).max() / np.abs(old).max())

        assert change("blk.17.attn_q.weight") > 1e-3  # adapted (last two blocks, q/v)
        assert change("blk.16.attn_v.weight") > 1e-3
        assert change("blk.0.attn_q.weight") < 1e-3  # not adapted: only F16 rounding
        assert change("blk.17.attn_k.weight") < 1e-3
    assert tuned.lineage["eval_loss_after"] < tuned.lineage["eval_loss_before"]


def test_tuned_version_loads_and_generates_in_llama_cpp(tuned_model: TunedModel) -> None:
    version = tuned_model.outcome.version
    engine = open_engine(version, tuned_model.registry.blobs, tuned_model.settings)
    try:
        chat = render_chat(version.metadata, [{"role": "user", "content": "The VPN is down."}])
        text, finish = collect(
            engine.complete(chat.prompt, SamplingParams(max_tokens=8, temperature=0.0))
        )
    finally:
        engine.close()
    assert finish.completion_tokens > 0 and text.strip()


def test_tune_run_folder_lives_under_the_home(tuned_model: TunedModel) -> None:
    run_dir: Path = tuned_model.outcome.run_dir
    assert run_dir.parent == tuned_model.settings.home / "tune"
    assert run_dir.name.startswith("ticket-router-")
