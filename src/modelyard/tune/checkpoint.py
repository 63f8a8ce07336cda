"""Training checkpoints: the adapter, the optimizer and the step, written atomically.

``torch.save`` goes to a temporary file in the same folder, which is fsynced and renamed
over ``checkpoint.pt``; an interruption at any moment leaves the previous checkpoint intact.
Loading uses ``weights_only=True``: a checkpoint is tensors and numbers, never code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.atomic_write import open_binary
from modelyard.errors import InvalidInput

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    adapter: dict[str, Any]
    optimizer: dict[str, Any]
    losses: list[float]
    tokens: int
    elapsed_s: float


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint) -> Path:
    import torch

    final = run_dir / CHECKPOINT
    with open_binary(final) as handle:
        torch.save(
            {
                "step": checkpoint.step,
                "adapter": checkpoint.adapter,
                "optimizer": checkpoint.optimizer,
                "losses": checkpoint.losses,
                "tokens": checkpoint.tokens,
                "elapsed_s": checkpoint.elapsed_s,
            },
            handle,
        )
    return final


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    import torch

    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise InvalidInput(f"the checkpoint {path} cannot be read: {exc}") from exc
    return Checkpoint(
        step=int(data["step"]),
        adapter=data["adapter"],
        optimizer=data["optimizer"],
        losses=[float(v) for v in data["losses"]],
        tokens=int(data["tokens"]),
        elapsed_s=float(data["elapsed_s"]),
    )
