"""The LoRA recipe: a typed record whose fields are the whole training configuration.

The resolved recipe is saved as ``config.json`` beside the run's checkpoints and output, and
copied into the new version's lineage, so a tuned version says exactly how it was made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from modelyard.errors import InvalidInput

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
KNOWN_TARGETS = frozenset(DEFAULT_TARGETS)


@dataclass(frozen=True)
class LoraRecipe:
    base: str
    """The base version, ``NAME@N`` (resolved before the recipe is built)."""
    data: str
    """Path of the training JSONL."""
    name: str
    """The name the tuned version is registered under."""
    eval_data: str | None = None
    epochs: int = 1
    lr: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    layers: int | None = None
    """Adapt only the last N transformer blocks (backpropagation stops there: faster)."""
    max_seq_len: int = 256
    batch_size: int = 4
    seed: int = 0
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: all epochs)."""
    checkpoint_every: int = 20
    grad_clip: float = 1.0
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = (
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.rank >= 1, "--rank must be at least 1"),
            (self.alpha > 0, "--alpha must be positive"),
            (0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)"),
            (self.max_seq_len >= 8, "--max-seq-len must be at least 8"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1"),
            (self.layers is None or self.layers >= 1, "--layers must be at least 1"),
            (bool(self.target_modules), "--target-modules must name at least one module"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)
        unknown = sorted(set(self.target_modules) - KNOWN_TARGETS)
        if unknown:
            raise InvalidInput(
                f"unknown --target-modules {', '.join(unknown)}; "
                f"choose from {', '.join(DEFAULT_TARGETS)}",
                param="target_modules",
            )

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    def run_id(self, base_digest: str, data_sha256: str) -> str:
        """Same recipe on the same base and data → same run folder (what --resume finds)."""
        key = {**self.to_json(), "base_digest": base_digest, "data_sha256": data_sha256}
        key.pop("threads")
        text = json.dumps(key, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
