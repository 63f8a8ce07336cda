"""``tune lora`` end to end: base from the registry → validated data → LoRA training →
merged F16 GGUF → a new registered version (through intake) whose lineage says how it was made.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from modelyard.atomic_write import temp_path, write_text
from modelyard.catalog.names import validate_name
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.intake.importer import execute_import, plan_import
from modelyard.tune.base_model import check_supported, load_base_model
from modelyard.tune.checkpoint import CHECKPOINT, load_checkpoint
from modelyard.tune.data import Dataset, load_dataset
from modelyard.tune.export import lora_deltas, write_merged_gguf
from modelyard.tune.gguf_file import GGUFFile
from modelyard.tune.recipe import LoraRecipe
from modelyard.tune.tokenizer import GGUFTokenizer
from modelyard.tune.train import StepCallback, TrainResult, adapter_state, evaluate_loss, train

LIBRARIES = ("torch", "transformers", "peft", "gguf", "llama_cpp_python", "numpy")
PhaseCallback = Callable[[str], None]


@dataclass(frozen=True)
class TuneOutcome:
    version: ModelVersion
    run_dir: Path
    result: TrainResult
    eval_loss_before: float | None
    eval_loss_after: float | None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def run_dir_for(settings: Settings, recipe: LoraRecipe, base_digest: str, data_sha: str) -> Path:
    return settings.home / "tune" / f"{recipe.name}-{recipe.run_id(base_digest, data_sha)}"


def _write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _data_record(dataset: Dataset) -> dict[str, Any]:
    return {
        "path": str(dataset.path),
        "sha256": dataset.sha256,
        "rows": dataset.rows,
        "tokens": dataset.tokens,
    }


def run_lora(
    recipe: LoraRecipe,
    registry: Registry,
    settings: Settings,
    *,
    resume: bool = False,
    created_by: str | None = None,
    on_step: StepCallback | None = None,
    on_phase: PhaseCallback | None = None,
) -> TuneOutcome:
    say = on_phase or (lambda _message: None)
    validate_name(recipe.name)
    base = registry.resolve(recipe.base)
    if base.format != "gguf":
        raise InvalidInput(
            f"{base.ref} is a {base.format} model; LoRA tuning takes a GGUF base for now",
            param="base",
        )
    base_path = registry.blobs.path_for(base.files[0].sha256)
    with GGUFFile(base_path) as gguf:
        check_supported(gguf)
        say(f"validating data against {base.ref}'s tokenizer")
        tokenizer = GGUFTokenizer(base_path)
        try:
            train_set = load_dataset(
                Path(recipe.data), tokenizer, base.metadata, max_seq_len=recipe.max_seq_len
            )
            eval_set = None
            if recipe.eval_data:
                eval_set = load_dataset(
                    Path(recipe.eval_data),
                    tokenizer,
                    base.metadata,
                    max_seq_len=recipe.max_seq_len,
                    what="--eval",
                )
        finally:
            tokenizer.close()
        run_dir = run_dir_for(settings, recipe, base.digest, train_set.sha256)
        _prepare_run_dir(run_dir, resume)
        _write_json(run_dir / "config.json", {**recipe.to_json(), "base_digest": base.digest})
        return _train_and_register(
            recipe,
            registry,
            settings,
            base,
            gguf,
            train_set,
            eval_set,
            run_dir,
            resume,
            on_step,
            say,
            created_by,
        )


def import_merged(
    merged: Path,
    name: str,
    registry: Registry,
    settings: Settings,
    *,
    base: ModelVersion,
    lineage: dict[str, Any],
    created_by: str | None,
) -> ModelVersion:
    """Register a merged GGUF as ``name``'s next version (tuned from ``base``) through
    intake; the merged file is removed either way (intake keeps its own copy)."""
    try:
        plan = plan_import(merged, name, settings)
        return execute_import(
            plan, registry, origin="tuned", parent=base.ref, lineage=lineage, created_by=created_by
        )
    finally:
        merged.unlink(missing_ok=True)


def lora_config(recipe: LoraRecipe, blocks: int) -> Any:
    """PEFT's LoraConfig for ``recipe`` on a model of ``blocks`` blocks (``tune lora`` and
    every federated site build the same adapter)."""
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        lora_dropout=recipe.dropout,
        target_modules=list(recipe.target_modules),
        layers_to_transform=(
            list(range(blocks - recipe.layers, blocks)) if recipe.layers is not None else None
        ),
        bias="none",
    )


def save_adapter(model: Any, path: Path) -> None:
    """The trained LoRA matrices alone (safetensors), kept beside the run's config."""
    from safetensors.torch import save_file

    with temp_path(path) as partial:
        save_file({k: v.contiguous() for k, v in adapter_state(model).items()}, str(partial))


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if load_checkpoint(run_dir) is None:
            raise InvalidInput(
                f"nothing to resume: no checkpoint for this base, data and recipe in {run_dir}",
                param="resume",
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (run_dir / CHECKPOINT).unlink()


def _train_and_register(
    recipe: LoraRecipe,
    registry: Registry,
    settings: Settings,
    base: ModelVersion,
    gguf: GGUFFile,
    train_set: Dataset,
    eval_set: Dataset | None,
    run_dir: Path,
    resume: bool,
    on_step: StepCallback | None,
    say: PhaseCallback,
    created_by: str | None,
) -> TuneOutcome:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import get_peft_model

    torch.set_num_threads(recipe.threads or settings.n_threads or os.cpu_count() or 1)
    torch.manual_seed(recipe.seed)
    say(f"loading {base.ref} (dequantizing to float32)")
    model, links = load_base_model(gguf)
    blocks = int(model.config.num_hidden_layers)
    if recipe.layers is not None and recipe.layers > blocks:
        raise InvalidInput(f"--layers {recipe.layers}: {base.ref} has {blocks} blocks")
    config = lora_config(recipe, blocks)
    with warnings.catch_warnings():
        # peft asks transformers about gradient checkpointing through a deprecated alias
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        model = get_peft_model(model, config)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # trained where it runs fastest
    model.to(device)
    eval_before = None
    if eval_set is not None:
        say("scoring the held-out rows before training")
        eval_before = evaluate_loss(model, eval_set.examples, recipe.batch_size)
    result = train(model, train_set.examples, recipe, run_dir, resume=resume, on_step=on_step)
    eval_after = None
    if eval_set is not None:
        say("scoring the held-out rows after training")
        eval_after = evaluate_loss(model, eval_set.examples, recipe.batch_size)
    say("merging the adapter and writing an F16 GGUF")
    merged = write_merged_gguf(gguf, lora_deltas(model, links), run_dir / "merged-f16.gguf")
    lineage = {
        "method": "lora",
        "base": base.ref,
        "base_digest": base.digest,
        "data": _data_record(train_set),
        "eval_data": _data_record(eval_set) if eval_set else None,
        "hyperparameters": recipe.to_json(),
        "train_loss": result.final_loss,
        "eval_loss_before": eval_before,
        "eval_loss_after": eval_after,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "tokens_trained": result.tokens,
        "tokens_per_s": result.tokens_per_s,
        "duration_s": result.elapsed_s,
        "export": "merged into the base and written as an F16 GGUF",
        "device": device,
        "libraries": library_versions(),
        "run_dir": str(run_dir),
    }
    say("importing the merged model through intake")
    version = import_merged(
        merged, recipe.name, registry, settings, base=base, lineage=lineage, created_by=created_by
    )
    _write_json(run_dir / "result.json", {"version": version.ref, **lineage})
    with contextlib.suppress(FileNotFoundError):
        (run_dir / CHECKPOINT).unlink()
    save_adapter(model, run_dir / "adapter.safetensors")
    return TuneOutcome(version, run_dir, result, eval_before, eval_after)
