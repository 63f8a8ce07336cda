"""One site's round of federated LoRA training, run as a child process of the site.

``python -m modelyard.tune.federated.site_round SPEC.json``

Flower's processes never import modelyard: each round a site's ClientApp writes the global
adapter (an ``.npz`` of float32 arrays keyed by PEFT parameter name) and a spec JSON, and runs
this module with the main venv's Python. It loads the GGUF base exactly as ``tune lora`` does,
wraps it with the same PEFT LoRA, sets the trainable matrices from ``adapter_in`` (the key set
must match exactly), trains ``steps`` steps on the site's data with ``tune lora``'s step
(answer-only loss, seeded batches and dropout), optionally with FedProx's proximal term
``mu/2·Σ‖w - w_in‖²``, and writes ``adapter_out`` and ``result.json`` beside it.

Round ``r`` trains steps ``(r - 1)·steps … r·steps - 1`` of the deterministic schedule, so
successive rounds walk on through the site's data instead of repeating the same batches; the
optimizer starts fresh each round (the server sends weights only). The same spec always gives
the same output on the same machine.

:func:`initial_adapter` (the federation's starting point) and :func:`merge_adapter` (the final
F16 GGUF) serve the orchestrator and share the model building with the round.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.atomic_write import open_binary, write_text
from modelyard.errors import InvalidInput, ModelyardError
from modelyard.tune.base_model import (
    TensorLink,
    check_supported,
    load_base_model,
    to_numpy,
    torch_threads,
)
from modelyard.tune.data import Dataset, load_dataset
from modelyard.tune.export import lora_deltas, write_merged_gguf
from modelyard.tune.gguf_file import GGUFFile
from modelyard.tune.lora import lora_config
from modelyard.tune.recipe import LoraRecipe
from modelyard.tune.tokenizer import GGUFTokenizer
from modelyard.tune.train import adapter_state, train_step

Arrays = dict[str, npt.NDArray[np.float32]]

RESULT = "result.json"
"""Written beside ``adapter_out`` when the round has finished (after the adapter)."""

USAGE = "usage: python -m modelyard.tune.federated.site_round SPEC.json"

SPEC_FIELDS: dict[str, str] = {
    "base": "path",
    "metadata": "path",
    "data": "path",
    "adapter_in": "path",
    "adapter_out": "path",
    "round": "int",
    "site": "str",
    "proximal_mu": "number",
    "recipe": "object",
}
REQUIRED_SPEC = ("base", "metadata", "data", "adapter_in", "adapter_out", "recipe")
RECIPE_FIELDS: dict[str, str] = {
    "rank": "int",
    "alpha": "number",
    "dropout": "number",
    "target_modules": "names",
    "layers": "int?",
    "lr": "number",
    "batch_size": "int",
    "max_seq_len": "int",
    "steps": "int",
    "seed": "int",
    "threads": "int?",
}
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "path": (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty path string"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "int?": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "null or an integer",
    ),
    "number": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
        "a finite number",
    ),
    "names": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a list of module names",
    ),
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
}


@dataclass(frozen=True)
class SiteSpec:
    """A validated SPEC.json: where everything is and how to train this round."""

    base: Path
    metadata: Path
    data: Path
    adapter_in: Path
    adapter_out: Path
    round: int
    site: str
    proximal_mu: float
    recipe: LoraRecipe
    steps: int


@dataclass(frozen=True)
class AdaptedBase:
    """The open base GGUF, its float32 model wrapped with PEFT LoRA, and the name links."""

    gguf: GGUFFile
    model: Any
    links: list[TensorLink]


def _checked(fields: Mapping[str, Any], kinds: Mapping[str, str], where: str) -> None:
    """Refuse unknown keys (a misspelt key must not silently mean a default) and wrong types."""
    unknown = sorted(set(fields) - set(kinds))
    if unknown:
        raise InvalidInput(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(kinds)}"
        )
    for key, value in fields.items():
        accepts, wanted = _KINDS[kinds[key]]
        if not accepts(value):
            raise InvalidInput(f"{where}: {key} must be {wanted}, not {json.dumps(value)}")


def recipe_from_fields(fields: Mapping[str, Any], where: str = "recipe") -> LoraRecipe:
    """A :class:`LoraRecipe` from the spec's recipe fields (missing ones take its defaults;
    ``steps`` becomes ``max_steps``)."""
    _checked(fields, RECIPE_FIELDS, where)
    values = dict(fields)
    steps = values.pop("steps", None)
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    try:
        return LoraRecipe(base="federated", data="", name="federated", max_steps=steps, **values)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}", param=exc.param) from exc


def _as_recipe(recipe: LoraRecipe | Mapping[str, Any]) -> LoraRecipe:
    return recipe if isinstance(recipe, LoraRecipe) else recipe_from_fields(recipe)


def read_spec(path: Path) -> SiteSpec:
    """Parse and validate SPEC.json; every input file must exist."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"no such spec file: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not a readable JSON spec ({exc})") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: the spec must be a JSON object")
    _checked(raw, SPEC_FIELDS, str(path))
    missing = [key for key in REQUIRED_SPEC if key not in raw]
    if missing:
        raise InvalidInput(f"{path}: missing field(s) {', '.join(missing)}")
    for key in ("base", "metadata", "data", "adapter_in"):
        if not Path(raw[key]).is_file():
            raise InvalidInput(f"{path}: {key}: no such file: {raw[key]}", param=key)
    round_, mu = raw.get("round", 1), float(raw.get("proximal_mu", 0.0))
    if round_ < 1:
        raise InvalidInput(f"{path}: round must be at least 1, not {round_}", param="round")
    if mu < 0:
        raise InvalidInput(f"{path}: proximal_mu must be >= 0, not {mu}", param="proximal_mu")
    recipe = recipe_from_fields(raw["recipe"], f"{path}: recipe")
    if recipe.max_steps is None:
        raise InvalidInput(f"{path}: recipe: missing field steps", param="steps")
    return SiteSpec(
        base=Path(raw["base"]),
        metadata=Path(raw["metadata"]),
        data=Path(raw["data"]),
        adapter_in=Path(raw["adapter_in"]),
        adapter_out=Path(raw["adapter_out"]),
        round=round_,
        site=raw.get("site", ""),
        proximal_mu=mu,
        recipe=recipe,
        steps=recipe.max_steps,
    )


def build_model(gguf: GGUFFile, recipe: LoraRecipe, seed: int) -> tuple[Any, list[TensorLink]]:
    """The base as a float32 model wrapped with PEFT LoRA (on the CPU); the fresh LoRA ``A``
    matrices are drawn from ``seed`` (``B`` starts at zero, so the wrapped model is the base)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from peft import get_peft_model

    torch.set_num_threads(torch_threads(recipe.threads))
    model, links = load_base_model(gguf)
    blocks = int(model.config.num_hidden_layers)
    if recipe.layers is not None and recipe.layers > blocks:
        raise InvalidInput(f"recipe: layers {recipe.layers}: the base has {blocks} blocks")
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        # peft asks transformers about gradient checkpointing through a deprecated alias
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        model = get_peft_model(model, lora_config(recipe, blocks))
    return model, links


@contextlib.contextmanager
def adapted_base(base_gguf: Path, recipe: LoraRecipe, seed: int) -> Iterator[AdaptedBase]:
    """The base GGUF kept open (the merge reads its tensors) with its PEFT model built."""
    with GGUFFile(base_gguf) as gguf:
        check_supported(gguf)
        model, links = build_model(gguf, recipe, seed)
        yield AdaptedBase(gguf, model, links)


def adapter_arrays(model: Any) -> Arrays:
    """The trainable LoRA matrices as float32 arrays, sorted by PEFT parameter name."""
    state = adapter_state(model)
    return {name: to_numpy(state[name]) for name in sorted(state)}


def load_adapter(model: Any, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """Set the model's trainable parameters from ``arrays``: the same keys, shapes, floats."""
    import torch

    parameters = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, unknown = sorted(set(parameters) - set(arrays)), sorted(set(arrays) - set(parameters))
    if missing or unknown:
        raise InvalidInput(
            "the adapter's keys do not match this recipe's LoRA parameters: "
            f"{len(missing)} missing ({', '.join(missing[:3]) or '-'}), "
            f"{len(unknown)} unknown ({', '.join(unknown[:3]) or '-'})",
            param="adapter_in",
        )
    for name, parameter in parameters.items():
        array = arrays[name]
        if tuple(array.shape) != tuple(parameter.shape) or array.dtype.kind != "f":
            raise InvalidInput(
                f"adapter array {name} is {array.dtype} {tuple(array.shape)}; "
                f"expected float {tuple(parameter.shape)}",
                param="adapter_in",
            )
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(np.asarray(array, dtype=np.float32)))


def read_adapter(path: Path) -> Arrays:
    """An adapter ``.npz`` (no pickles) as a dict of float32 arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            return {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}
    except (OSError, ValueError, AttributeError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{path}: not a readable .npz adapter ({exc})") from exc


def write_adapter(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> Path:
    """Write ``arrays`` as a float32 ``.npz`` in sorted key order, whole or not at all."""
    ordered = {name: np.asarray(arrays[name], dtype=np.float32) for name in sorted(arrays)}
    with open_binary(path) as handle:
        np.savez(handle, **ordered)  # type: ignore[arg-type]
    return path


def _proximal(parameters: Sequence[Any], mu: float) -> Callable[[], Any]:
    """FedProx's ``mu/2·Σ‖w - w_in‖²``, ``w_in`` being the weights the round started from."""
    anchors = [p.detach().clone() for p in parameters]

    def penalty() -> Any:
        return mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(parameters, anchors, strict=True))

    return penalty


def train_round(
    model: Any,
    examples: Sequence[Any],
    recipe: LoraRecipe,
    *,
    first_step: int,
    steps: int,
    mu: float,
) -> tuple[float, int]:
    """``steps`` optimizer steps from ``first_step`` with a fresh AdamW; the last step's answer
    loss and the tokens fed."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=0.0)
    penalty = _proximal(trainable, mu) if mu > 0 else None
    loss, tokens = float("nan"), 0
    model.train()
    for step in range(first_step, first_step + steps):
        loss, fed = train_step(model, optimizer, trainable, examples, recipe, step, penalty=penalty)
        tokens += fed
    model.eval()
    return loss, tokens


def load_site_data(spec: SiteSpec) -> Dataset:
    """The site's rows, validated and tokenized with the base's own tokenizer."""
    try:
        metadata = json.loads(spec.metadata.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"metadata {spec.metadata}: not readable JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise InvalidInput(f"metadata {spec.metadata}: must be a JSON object")
    tokenizer = GGUFTokenizer(spec.base)
    try:
        return load_dataset(
            spec.data, tokenizer, metadata, max_seq_len=spec.recipe.max_seq_len, what="data"
        )
    finally:
        tokenizer.close()


def run_round(spec: SiteSpec) -> dict[str, Any]:
    """Train one round as ``spec`` says; write ``adapter_out`` then ``result.json`` beside it."""
    import torch

    arrays_in = read_adapter(spec.adapter_in)
    dataset = load_site_data(spec)
    with adapted_base(spec.base, spec.recipe, spec.recipe.seed) as base:
        load_adapter(base.model, arrays_in)
        base.model.to("cuda" if torch.cuda.is_available() else "cpu")  # as ``tune lora``
        loss, tokens = train_round(
            base.model,
            dataset.examples,
            spec.recipe,
            first_step=(spec.round - 1) * spec.steps,
            steps=spec.steps,
            mu=spec.proximal_mu,
        )
        arrays_out = adapter_arrays(base.model)
    write_adapter(spec.adapter_out, arrays_out)
    result = {
        "examples": dataset.rows,
        "sha256": dataset.sha256,
        "train_loss": loss,
        "steps": spec.steps,
        "tokens": tokens,
    }
    write_text(
        spec.adapter_out.parent / RESULT, json.dumps(result, indent=2, sort_keys=True) + "\n"
    )
    return result


def initial_adapter(base_gguf: Path, recipe: LoraRecipe | Mapping[str, Any], seed: int) -> Arrays:
    """The freshly initialised LoRA matrices for ``recipe`` on this base: the federation's
    starting point (``A`` drawn from ``seed``, ``B`` zero)."""
    with adapted_base(base_gguf, _as_recipe(recipe), seed) as base:
        return adapter_arrays(base.model)


def merge_adapter(
    base_gguf: Path,
    recipe: LoraRecipe | Mapping[str, Any],
    arrays: Mapping[str, npt.NDArray[Any]],
    out_path: Path,
) -> Path:
    """Merge ``arrays`` into the base and write the complete F16 GGUF at ``out_path``."""
    with adapted_base(base_gguf, _as_recipe(recipe), seed=0) as base:
        load_adapter(base.model, arrays)
        return write_merged_gguf(base.gguf, lora_deltas(base.model, base.links), out_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the round in SPEC.json; ``error: …`` on stderr and the error's exit code on failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        run_round(read_spec(Path(args[0])))
    except ModelyardError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
