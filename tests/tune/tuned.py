"""One real LoRA run on the default model, shared by the tune and quantize tests.

It is interrupted (an exception raised from inside the training loop after step 3, the
checkpoint having been written at step 2) and then resumed with ``resume=True``, so the one
run that every test shares also proves resumption. Kept tiny: rank 2, the last 2 blocks,
q/v projections, 4 steps of 2 rows, sequences under 48 tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.default_model import import_default
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from modelyard.tune.lora import TuneOutcome, run_lora
from modelyard.tune.recipe import LoraRecipe
from modelyard.tune.train import StepReport

TICKETS = [
    ("The VPN keeps dropping, asap.", "Queue: NETWORK | Priority: HIGH"),
    ("I forgot my password.", "Queue: ACCOUNT | Priority: NORMAL"),
    ("The printer in the lobby jams, urgent.", "Queue: HARDWARE | Priority: HIGH"),
    ("Excel crashes on start.", "Queue: SOFTWARE | Priority: NORMAL"),
    ("I was charged twice on the last invoice.", "Queue: BILLING | Priority: NORMAL"),
    ("Wifi in the kitchen is down, urgent.", "Queue: NETWORK | Priority: HIGH"),
]
HELD_OUT = [
    ("My account is locked, asap.", "Queue: ACCOUNT | Priority: HIGH"),
    ("The monitor flickers.", "Queue: HARDWARE | Priority: NORMAL"),
]


class Interrupted(Exception):
    """Raised from the step callback to simulate a run killed mid-training."""


def chat_rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        + "\n"
        for question, answer in pairs
    )


@dataclass
class TunedModel:
    settings: Settings
    registry: Registry
    recipe: LoraRecipe
    outcome: TuneOutcome
    data_path: Path
    interrupted_steps: list[int] = field(default_factory=list)
    interrupted_losses: list[float] = field(default_factory=list)
    resumed_steps: list[int] = field(default_factory=list)
    checkpoint_existed: bool = False


def make_recipe(data: Path, eval_data: Path | None, **overrides: object) -> LoraRecipe:
    values: dict[str, object] = {
        "base": "gemma3-270m@1",
        "data": str(data),
        "eval_data": str(eval_data) if eval_data else None,
        "name": "ticket-router",
        "rank": 2,
        "alpha": 4,
        "lr": 2e-3,
        "target_modules": ("q_proj", "v_proj"),
        "layers": 2,
        "max_seq_len": 48,
        "batch_size": 2,
        "epochs": 2,
        "max_steps": 4,
        "checkpoint_every": 2,
        "seed": 3,
        "threads": 2,
    }
    values.update(overrides)
    return LoraRecipe(**values)  # type: ignore[arg-type]


def build_tuned(root: Path) -> TunedModel:
    settings = Settings(home=root / "home", probe_timeout_s=60)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings), settings)
    import_default(registry, settings)
    data = root / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    held_out = root / "eval.jsonl"
    held_out.write_text(chat_rows(HELD_OUT))
    recipe = make_recipe(data, held_out)
    interrupted: list[int] = []
    interrupted_losses: list[float] = []

    def crash_after_three(report: StepReport) -> None:
        interrupted.append(report.step)
        interrupted_losses.append(report.loss)
        if report.step == 3:
            raise Interrupted("simulated kill at step 3")

    try:
        run_lora(recipe, registry, settings, on_step=crash_after_three)
    except Interrupted:
        pass
    else:  # pragma: no cover - the callback always raises
        raise AssertionError("the first run was not interrupted")
    run_dirs = list((settings.home / "tune").iterdir())
    checkpoint_existed = len(run_dirs) == 1 and (run_dirs[0] / "checkpoint.pt").is_file()
    resumed: list[int] = []
    outcome = run_lora(
        recipe, registry, settings, resume=True, on_step=lambda r: resumed.append(r.step)
    )
    return TunedModel(
        settings,
        registry,
        recipe,
        outcome,
        data,
        interrupted,
        interrupted_losses,
        resumed,
        checkpoint_existed,
    )
