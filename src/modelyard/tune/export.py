"""Merge a trained LoRA adapter into its GGUF base and write a complete 16-bit GGUF.

Why merge rather than ship a GGUF LoRA adapter: a merged file is an ordinary GGUF version,
served by the llama.cpp engine, the gateway and every other GGUF consumer with no
adapter-aware loading path, quantizable with ``modelyard quantize`` like any other version,
and content-addressed as one blob whose digest names exactly the weights that answer.

Every tensor of the base is dequantized; a LoRA-targeted weight gets ``scale · B @ A``
added (GGUF and PyTorch agree on the row-major ``[out, in]`` layout for this family);
matrices are written as F16, vectors (norms) stay F32. All metadata (tokenizer, chat
template, architecture keys) is copied from the base; ``general.file_type`` says F16.
The file is written to a temporary path, fsynced, and renamed into place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.atomic_write import temp_path
from modelyard.store.disk_space import full_disk_said_plainly, require_free
from modelyard.tune.base_model import TensorLink
from modelyard.tune.gguf_file import GGUFFile

SKIPPED_KEYS = ("general.architecture", "general.file_type", "general.alignment")
F16_FILE_TYPE = 1

ProgressCallback = Callable[[int, int], None]


def lora_deltas(model: Any, links: list[TensorLink]) -> dict[str, npt.NDArray[np.float32]]:
    """GGUF tensor name → the adapter's weight delta (``scale · B @ A``), from a PEFT model."""
    from peft.tuners.lora import LoraLayer

    by_hf = {link.hf_name: link.gguf_name for link in links}
    deltas: dict[str, npt.NDArray[np.float32]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        hf_name = name.removeprefix("base_model.model.") + ".weight"
        if hf_name not in by_hf:
            raise KeyError(f"adapted module {hf_name} has no GGUF tensor")
        layer: Any = module
        delta = layer.get_delta_weight("default")
        deltas[by_hf[hf_name]] = delta.detach().float().cpu().numpy()
    return deltas


def write_merged_gguf(
    base: GGUFFile,
    deltas: Mapping[str, npt.NDArray[np.float32]],
    target: Path,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    import gguf

    require_free(target.parent, merged_size(base), f"the merged model {target.name}")
    with (
        full_disk_said_plainly(target.parent, f"the merged model {target.name}"),
        temp_path(target) as partial,
    ):
        writer = gguf.GGUFWriter(str(partial), base.architecture)
        try:
            _write_tensors(writer, base, deltas, progress)
        finally:
            writer.close()
    if progress is not None:
        progress(len(base.tensors) * 2, len(base.tensors) * 2)
    return target


def merged_size(base: GGUFFile) -> int:
    """Bytes of the merged file's tensors: matrices in F16, vectors in F32."""
    return sum(math.prod(info.shape) * (2 if len(info.shape) >= 2 else 4) for info in base.tensors)


def _write_tensors(
    writer: Any,
    base: GGUFFile,
    deltas: Mapping[str, npt.NDArray[np.float32]],
    progress: ProgressCallback | None,
) -> None:
    import gguf

    for key, entry in base.metadata.items():
        if key in SKIPPED_KEYS:
            continue
        sub = gguf.GGUFValueType(entry.sub_type) if entry.sub_type is not None else None
        writer.add_key_value(key, entry.value, gguf.GGUFValueType(entry.type), sub)
    writer.add_file_type(F16_FILE_TYPE)
    for index, info in enumerate(base.tensors):
        array = base.dequantized(info)
        delta = deltas.get(info.name)
        if delta is not None:
            if delta.shape != array.shape:
                raise ValueError(f"{info.name}: delta {delta.shape} vs weight {array.shape}")
            array = array + delta
        stored = array.astype(np.float16) if array.ndim >= 2 else array.astype(np.float32)
        writer.add_tensor(info.name, stored)
        if progress is not None:
            progress(index + 1, len(base.tensors) * 2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
