"""Build a trainable transformers model from a registered GGUF base, in process and fast.

The GGUF's tensors are dequantized to float32 and renamed to their Hugging Face names with
``gguf``'s own tensor-name map (the inverse of llama.cpp's converter), undoing the one
transform that converter applies to this family (Gemma stores RMSNorm weights as ``1 + w``).
The model's config is read from the same metadata. Supported architectures are listed in
:data:`ARCHITECTURES`; anything else is refused with a clear message before work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.errors import InvalidInput
from modelyard.tune.gguf_file import GGUFFile

if TYPE_CHECKING:
    import torch

ARCHITECTURES = ("gemma3",)


@dataclass(frozen=True)
class TensorLink:
    """Where a Hugging Face parameter lives in the GGUF, and how to convert between them."""

    hf_name: str
    gguf_name: str
    norm_offset: float
    """Added to the HF value to get the GGUF value (Gemma's RMSNorm: 1.0)."""


def check_supported(gguf: GGUFFile) -> None:
    if gguf.architecture not in ARCHITECTURES:
        raise InvalidInput(
            f"LoRA tuning supports GGUF bases of architecture {', '.join(ARCHITECTURES)}; "
            f"this base is {gguf.architecture or 'unknown'}",
            param="base",
        )


def gemma3_config(gguf: GGUFFile) -> Any:
    from transformers import Gemma3TextConfig

    vocab = gguf.get("tokenizer.ggml.tokens")
    head_dim = int(gguf.arch_get("attention.key_length", 256))
    return Gemma3TextConfig(
        vocab_size=len(vocab) if vocab else gguf.tensor("token_embd.weight").shape[1],
        hidden_size=int(gguf.arch_get("embedding_length")),
        intermediate_size=int(gguf.arch_get("feed_forward_length")),
        num_hidden_layers=int(gguf.arch_get("block_count")),
        num_attention_heads=int(gguf.arch_get("attention.head_count")),
        num_key_value_heads=int(gguf.arch_get("attention.head_count_kv")),
        head_dim=head_dim,
        rms_norm_eps=float(gguf.arch_get("attention.layer_norm_rms_epsilon", 1e-6)),
        sliding_window=int(gguf.arch_get("attention.sliding_window", 512)),
        max_position_embeddings=int(gguf.arch_get("context_length", 32768)),
        rope_parameters={
            "full_attention": {
                "rope_type": "default",
                "rope_theta": float(gguf.arch_get("rope.freq_base", 1_000_000.0)),
            },
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        bos_token_id=int(gguf.get("tokenizer.ggml.bos_token_id", 2)),
        eos_token_id=int(gguf.get("tokenizer.ggml.eos_token_id", 1)),
        pad_token_id=int(gguf.get("tokenizer.ggml.padding_token_id", 0)),
        tie_word_embeddings=True,
        dtype="float32",
    )


def tensor_links(gguf: GGUFFile, hf_names: list[str]) -> list[TensorLink]:
    """Pair every HF parameter with its GGUF tensor (tied output weights have none)."""
    import gguf as gguf_py

    arch = gguf_py.MODEL_ARCH[gguf.architecture.upper()]
    name_map = gguf_py.get_tensor_name_map(arch, int(gguf.arch_get("block_count")))
    present = {info.name for info in gguf.tensors}
    links = []
    for hf_name in hf_names:
        if hf_name == "lm_head.weight":
            continue  # tied to the token embedding
        mapped = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is None or mapped not in present:
            raise InvalidInput(f"the base GGUF has no tensor for {hf_name}", param="base")
        offset = 1.0 if hf_name.endswith("norm.weight") else 0.0
        links.append(TensorLink(hf_name, mapped, offset))
    return links


def load_base_model(gguf: GGUFFile) -> tuple[Any, list[TensorLink]]:
    """The float32 ``Gemma3ForCausalLM`` with the GGUF's weights, and the name links used."""
    import torch
    from transformers import Gemma3ForCausalLM
    from transformers.initialization import no_init_weights

    check_supported(gguf)
    config = gemma3_config(gguf)
    with no_init_weights():  # every weight is overwritten from the GGUF below
        model: Any = Gemma3ForCausalLM(config)
    names = [name for name, _ in model.named_parameters()]
    links = tensor_links(gguf, names)
    state: dict[str, torch.Tensor] = {}
    for link in links:
        array = gguf.dequantized(gguf.tensor(link.gguf_name))
        if link.norm_offset:
            array = array - np.float32(link.norm_offset)
        state[link.hf_name] = torch.from_numpy(np.ascontiguousarray(array))
    missing = [n for n in names if n not in state and n != "lm_head.weight"]
    if missing:
        raise InvalidInput(f"the base GGUF lacks {', '.join(missing[:3])}", param="base")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in state:
                parameter.copy_(state.pop(name))
    model.tie_weights()
    model.eval()
    return model, links


def torch_threads(requested: int | None) -> int:
    import os

    return requested or max(1, (os.cpu_count() or 1))


def to_numpy(tensor: torch.Tensor) -> Any:
    return tensor.detach().to("cpu").float().numpy()
