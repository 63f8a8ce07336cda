"""The LoRA training loop: deterministic batches, answer-only loss, checkpoints, resume.

Step ``s`` always trains on the same batch (epoch ``s // steps_per_epoch``, shuffled with
``seed + epoch``), and dropout is seeded per step, so a run resumed from a checkpoint
continues exactly where the interrupted one stopped. Logits are computed only at the
positions whose next token is an answer token: the output projection over a 262k-token
vocabulary costs more than the rest of a small model, and prompt positions carry no loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.tune.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from modelyard.tune.data import Example
from modelyard.tune.recipe import LoraRecipe

PAD_ID = 0


@dataclass(frozen=True)
class StepReport:
    step: int
    total_steps: int
    loss: float
    tokens_per_s: float


@dataclass(frozen=True)
class TrainResult:
    steps: int
    losses: list[float]
    tokens: int
    elapsed_s: float
    resumed_from: int | None

    @property
    def final_loss(self) -> float:
        tail = self.losses[-5:]
        return sum(tail) / len(tail) if tail else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0


StepCallback = Callable[[StepReport], None]


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return math.ceil(rows / batch_size)


def total_steps(recipe: LoraRecipe, rows: int) -> int:
    full = recipe.epochs * steps_per_epoch(rows, recipe.batch_size)
    return min(full, recipe.max_steps) if recipe.max_steps else full


def batch_for_step(examples: Sequence[Example], recipe: LoraRecipe, step: int) -> list[Example]:
    import torch

    per_epoch = steps_per_epoch(len(examples), recipe.batch_size)
    epoch, index = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(recipe.seed + epoch)
    order = torch.randperm(len(examples), generator=generator).tolist()
    chosen = order[index * recipe.batch_size : (index + 1) * recipe.batch_size]
    return [examples[i] for i in chosen]


def answer_loss(model: Any, batch: Sequence[Example]) -> tuple[Any, int]:
    """Mean cross-entropy over the batch's answer tokens, and how many tokens were fed."""
    import torch
    import torch.nn.functional as F

    width = max(e.length for e in batch)
    ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    answer = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, example in enumerate(batch):
        tokens = list(example.prompt_ids) + list(example.answer_ids)
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        answer[row, len(example.prompt_ids) : len(tokens)] = True
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = causal_lm.lm_head.weight.device
    ids, mask, answer = ids.to(device), mask.to(device), answer.to(device)
    hidden = causal_lm.model(input_ids=ids, attention_mask=mask).last_hidden_state
    # Position t predicts token t + 1: keep the positions whose next token is an answer token.
    predicting = answer[:, 1:]
    logits = causal_lm.lm_head(hidden[:, :-1][predicting])
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    targets = ids[:, 1:][predicting]
    return F.cross_entropy(logits.float(), targets), int(mask.sum())


def evaluate_loss(model: Any, examples: Sequence[Example], batch_size: int) -> float:
    """Answer-token cross-entropy over a whole data set (weighted by answer tokens)."""
    import torch

    total = 0.0
    count = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            loss, _ = answer_loss(model, batch)
            answers = sum(len(e.answer_ids) for e in batch)
            total += float(loss) * answers
            count += answers
    if was_training:
        model.train()
    return total / count if count else float("nan")


def train(
    model: Any,
    examples: Sequence[Example],
    recipe: LoraRecipe,
    run_dir: Path,
    *,
    resume: bool = False,
    on_step: StepCallback | None = None,
) -> TrainResult:
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=recipe.lr, weight_decay=0.0)
    start, losses, tokens, elapsed_before, resumed_from = 0, [], 0, 0.0, None
    if resume:
        checkpoint = load_checkpoint(run_dir)
        if checkpoint is not None:
            _restore(model, optimizer, checkpoint)
            start, losses, tokens = checkpoint.step, list(checkpoint.losses), checkpoint.tokens
            elapsed_before, resumed_from = checkpoint.elapsed_s, checkpoint.step
    steps = total_steps(recipe, len(examples))
    model.train()
    began = time.perf_counter()
    for step in range(start, steps):
        loss, fed = train_step(model, optimizer, trainable, examples, recipe, step)
        losses.append(loss)
        tokens += fed
        elapsed = elapsed_before + time.perf_counter() - began
        done = step + 1
        if done % recipe.checkpoint_every == 0 or done == steps:
            # The last step is saved too: a failed merge or import resumes without retraining.
            save_checkpoint(run_dir, _snapshot(model, optimizer, done, losses, tokens, elapsed))
        if on_step is not None:
            on_step(StepReport(done, steps, losses[-1], tokens / elapsed if elapsed else 0.0))
    model.eval()
    elapsed = elapsed_before + time.perf_counter() - began
    return TrainResult(steps, losses, tokens, elapsed, resumed_from)


def train_step(
    model: Any,
    optimizer: Any,
    trainable: Sequence[Any],
    examples: Sequence[Example],
    recipe: LoraRecipe,
    step: int,
    *,
    penalty: Callable[[], Any] | None = None,
) -> tuple[float, int]:
    """One optimizer step on step ``step``'s batch (dropout seeded by the step); returns the
    answer loss and the tokens fed. ``penalty`` adds a term to the loss that is optimised but
    not reported (a federated site's proximal term)."""
    import torch

    torch.manual_seed(recipe.seed * 1_000_003 + step)
    batch = batch_for_step(examples, recipe, step)
    loss, fed = answer_loss(model, batch)
    objective = loss + penalty() if penalty is not None else loss
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    torch.nn.utils.clip_grad_norm_(trainable, recipe.grad_clip)
    optimizer.step()
    return float(loss.detach()), fed


def adapter_state(model: Any) -> dict[str, Any]:
    return {
        name: parameter.detach().clone()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def _snapshot(
    model: Any, optimizer: Any, step: int, losses: list[float], tokens: int, elapsed: float
) -> Checkpoint:
    return Checkpoint(step, adapter_state(model), optimizer.state_dict(), losses, tokens, elapsed)


def _restore(model: Any, optimizer: Any, checkpoint: Checkpoint) -> None:
    import torch

    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in checkpoint.adapter.items():
            parameters[name].copy_(value)
    optimizer.load_state_dict(checkpoint.optimizer)
