"""``modelyard tune``: fine-tune a registered model on your own data (LoRA), alone or across
sites that keep their data (federated, with Flower)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from modelyard.cli.output import print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput
from modelyard.tune.federated.recipe import FederatedRecipe, Site
from modelyard.tune.recipe import DEFAULT_TARGETS, LoraRecipe
from modelyard.tune.train import StepCallback, StepReport

app = typer.Typer(help="Fine-tune models on your own data.", no_args_is_help=True)


@contextmanager
def _training_progress(enabled: bool) -> Iterator[StepCallback]:
    console = stderr()
    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )
    task = progress.add_task("train", total=None, loss="-", speed="-")

    every = 0
    started = False  # the bar appears with the first step: a refused run shows none

    def on_step(report: StepReport) -> None:
        nonlocal every, started
        if not started:
            progress.start()
            started = True
        progress.update(
            task,
            completed=report.step,
            total=report.total_steps,
            loss=f"{report.loss:.3f}",
            speed=f"{report.tokens_per_s:.0f}",
        )
        if enabled and not console.is_terminal:  # a log file: a line every ~10% of the run
            every = every or max(1, report.total_steps // 10)
            if report.step % every == 0 or report.step == report.total_steps:
                console.print(
                    f"step {report.step}/{report.total_steps} loss {report.loss:.4f} "
                    f"{report.tokens_per_s:.1f} tok/s"
                )

    try:
        yield on_step
    finally:
        if started:
            progress.stop()


@app.command("lora")
def lora_command(
    ctx: typer.Context,
    base: str = typer.Option(..., "--base", help="Base model: NAME, NAME@N or an alias."),
    data: Path = typer.Option(..., "--data", help="Training rows (JSONL)."),
    name: str = typer.Option(..., "--name", help="Register the result under this name."),
    eval_data: Path | None = typer.Option(None, "--eval", help="Held-out rows (JSONL)."),
    epochs: int = typer.Option(1, "--epochs"),
    lr: float = typer.Option(2e-4, "--lr"),
    rank: int = typer.Option(8, "--rank"),
    alpha: int = typer.Option(16, "--alpha"),
    dropout: float = typer.Option(0.0, "--dropout"),
    target_modules: str = typer.Option(
        ",".join(DEFAULT_TARGETS), "--target-modules", help="Comma-separated module names."
    ),
    layers: int | None = typer.Option(
        None, "--layers", help="Adapt only the last N blocks (faster; default: all)."
    ),
    max_seq_len: int = typer.Option(256, "--max-seq-len"),
    batch_size: int = typer.Option(4, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N steps."),
    checkpoint_every: int = typer.Option(20, "--checkpoint-every", help="Steps between saves."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for training."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Train a LoRA adapter on a base model, merge it, and register a new GGUF version."""
    from modelyard.tune.lora import run_lora

    runtime: Runtime = ctx.obj
    resolved = runtime.registry.resolve(base)
    recipe = LoraRecipe(
        base=resolved.ref,
        data=str(data.resolve()),
        name=name,
        eval_data=str(eval_data.resolve()) if eval_data else None,
        epochs=epochs,
        lr=lr,
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        target_modules=tuple(t.strip() for t in target_modules.split(",") if t.strip()),
        layers=layers,
        max_seq_len=max_seq_len,
        batch_size=batch_size,
        seed=seed,
        max_steps=max_steps,
        checkpoint_every=checkpoint_every,
        threads=threads,
    )
    console = stderr()

    def phase(message: str) -> None:
        if not as_json:
            console.print(f"[dim]{message}…[/dim]")

    try:
        with _training_progress(enabled=not as_json) as on_step:
            outcome = run_lora(
                recipe,
                runtime.registry,
                runtime.settings,
                resume=resume,
                created_by=runtime.acting("evals.run"),
                on_step=on_step,
                on_phase=phase,
            )
    except KeyboardInterrupt:
        console.print("interrupted: run the same command with --resume to continue")
        raise typer.Exit(130) from None
    version = outcome.version
    if as_json:
        print_json({"version": version.to_json(), "run_dir": str(outcome.run_dir)})
        return
    lineage = version.lineage
    print_fields(
        [
            ("registered", version.ref),
            ("base", f"{lineage['base']} ({lineage['base_digest'][:12]})"),
            ("steps", lineage["steps"]),
            ("train loss", f"{lineage['train_loss']:.4f}"),
            ("eval loss before", _num(outcome.eval_loss_before)),
            ("eval loss after", _num(outcome.eval_loss_after)),
            ("tokens/s", f"{lineage['tokens_per_s']:.0f}"),
            ("duration", f"{lineage['duration_s']:.0f} s"),
            ("run folder", outcome.run_dir),
        ]
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@app.command("score")
def score_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME, NAME@N or an alias."),
    data: Path = typer.Option(..., "--data", help="Chat rows whose last message is the answer."),
    max_tokens: int = typer.Option(24, "--max-tokens", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Greedy answers on held-out chat rows: exact and contains accuracy (before/after)."""
    from modelyard.engines.loader import open_engine
    from modelyard.tune.score import score_answers

    runtime: Runtime = ctx.obj
    version = runtime.registry.resolve(model)
    engine = open_engine(version, runtime.blobs, runtime.settings)
    try:
        score = score_answers(engine, version.metadata, data, max_tokens=max_tokens)
    finally:
        engine.close()
    if as_json:
        print_json({"model": version.ref, **score.to_json()})
        return
    print_fields(
        [
            ("model", version.ref),
            ("rows", score.rows),
            ("exact", f"{score.exact:.1%}"),
            ("contains", f"{score.contains:.1%}"),
        ]
    )


def _site_data(sites: str, data: list[str]) -> tuple[Site, ...]:
    """``--sites a,b`` and ``--data a=PATH --data b=PATH`` → the sites, each with its file."""
    names = [n.strip() for n in sites.split(",") if n.strip()]
    paths: dict[str, Path] = {}
    for item in data:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise InvalidInput(f"--data takes SITE=PATH, not {item!r}", param="data")
        paths[name.strip()] = Path(path.strip()).expanduser()
    missing = [n for n in names if n not in paths]
    extra = sorted(set(paths) - set(names))
    if missing or extra:
        raise InvalidInput(
            "give one --data SITE=PATH per site in --sites"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in --sites: {', '.join(extra)}" if extra else ""),
            param="data",
        )
    return tuple(Site(n, paths[n]) for n in names)


@app.command("federated")
def federated_command(
    ctx: typer.Context,
    base: str = typer.Option(..., "--base", help="Base model: NAME, NAME@N or an alias."),
    sites: str = typer.Option(..., "--sites", help="Comma-separated site names."),
    data: list[str] = typer.Option(
        ..., "--data", help="SITE=PATH: a site's training rows (JSONL), read only by that site."
    ),
    name: str = typer.Option(..., "--name", help="Register the result under this name."),
    rounds: int = typer.Option(3, "--rounds"),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg or fedprox."),
    proximal_mu: float = typer.Option(0.0, "--proximal-mu", help="FedProx's proximal weight."),
    min_sites: int | None = typer.Option(
        None, "--min-sites", help="Sites a round needs (default: all)."
    ),
    round_timeout: float = typer.Option(
        900.0, "--round-timeout", help="Seconds a round waits for its sites' replies."
    ),
    steps_per_round: int = typer.Option(8, "--steps-per-round"),
    lr: float = typer.Option(1e-3, "--lr"),
    rank: int = typer.Option(8, "--rank"),
    alpha: int = typer.Option(16, "--alpha"),
    layers: int | None = typer.Option(None, "--layers", help="Adapt only the last N blocks."),
    max_seq_len: int = typer.Option(256, "--max-seq-len"),
    batch_size: int = typer.Option(4, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads per site."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Tune one LoRA adapter across sites that keep their data (Flower), merge, register."""
    from modelyard.tune.federated.run import run_federated

    runtime: Runtime = ctx.obj
    resolved = runtime.registry.resolve(base)
    recipe = FederatedRecipe(
        base=resolved.ref,
        name=name,
        sites=_site_data(sites, data),
        rounds=rounds,
        strategy=strategy,
        proximal_mu=proximal_mu,
        min_sites=min_sites,
        round_timeout_s=round_timeout,
        steps_per_round=steps_per_round,
        lr=lr,
        rank=rank,
        alpha=alpha,
        layers=layers,
        max_seq_len=max_seq_len,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
    )
    console = stderr()

    def phase(message: str) -> None:
        if not as_json:
            console.print(f"[dim]{message}…[/dim]")

    outcome = run_federated(
        recipe,
        runtime.registry,
        runtime.settings,
        created_by=runtime.acting("evals.run"),
        on_phase=phase,
    )
    version = outcome.version
    if as_json:
        print_json({"version": version.to_json(), "run_dir": str(outcome.work_dir)})
        return
    lineage = version.lineage
    print_fields(
        [
            ("registered", version.ref),
            ("base", f"{lineage['base']} ({lineage['base_digest'][:12]})"),
            ("strategy", f"{lineage['strategy']}, {lineage['rounds']} rounds"),
            ("run folder", outcome.work_dir),
        ]
    )
    print_table(
        "sites (what each reported: never its rows)",
        ["site", "dataset sha256", "examples", "rounds joined"],
        [
            [s["site"], s["dataset_sha256"], s["examples"], ",".join(map(str, s["rounds"]))]
            for s in lineage["sites"]
        ],
    )
