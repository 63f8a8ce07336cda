"""``modelyard hardware``: detect this machine, add the machines being considered."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from modelyard.cli.output import human_bytes, print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput
from modelyard.hardware.detect import detect
from modelyard.hardware.gpus import parse_gpus
from modelyard.hardware.local import local_profile
from modelyard.hardware.profile import GB, CostInputs, HardwareProfile
from modelyard.hardware.store import ProfileStore, load_profile_file

app = typer.Typer(
    help="Detect this machine and keep profiles of machines (memory, speed, cost).",
    invoke_without_command=True,
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
PRICE = typer.Option(0.0, "--price", min=0, help="Purchase price.")
LIFETIME = typer.Option(4.0, "--lifetime-years", min=0.1, help="Years to amortise over.")
POWER = typer.Option(
    None,
    "--power-watts",
    min=0,
    help="Average power draw while serving (default: the GPUs' data-sheet board power).",
)
ELECTRICITY = typer.Option(
    None,
    "--electricity-per-kwh",
    min=0,
    help="Electricity price (default: MODELYARD_ELECTRICITY_PER_KWH, 0.25).",
)
UPKEEP = typer.Option(0.0, "--upkeep-per-year", min=0, help="Hosting, support, operator time.")
CURRENCY = typer.Option("USD", "--currency")


def _runtime(ctx: typer.Context) -> Runtime:
    runtime: Runtime = ctx.obj
    return runtime


def _cost(
    runtime: Runtime,
    *,
    currency: str,
    price: float,
    lifetime_years: float,
    power_watts: float | None,
    electricity_per_kwh: float | None,
    upkeep_per_year: float,
) -> CostInputs:
    """Cost inputs; electricity defaults to the setting (power: see :func:`_with_power`)."""
    return CostInputs(
        currency=currency,
        purchase_price=price,
        lifetime_years=lifetime_years,
        power_watts=power_watts or 0.0,
        electricity_per_kwh=(
            runtime.settings.electricity_per_kwh
            if electricity_per_kwh is None
            else electricity_per_kwh
        ),
        upkeep_per_year=upkeep_per_year,
    )


def _with_power(profile: HardwareProfile, power_watts: float | None) -> HardwareProfile:
    """Without ``--power-watts``: the sum of the GPUs' data-sheet board power, when known."""
    if power_watts is not None or profile.gpu_tdp_watts is None:
        return profile
    cost = profile.cost.model_copy(update={"power_watts": profile.gpu_tdp_watts})
    return profile.model_copy(update={"cost": cost})


def _gb(value: float | None) -> str | None:
    return f"{value / GB:.1f} GB/s" if value else None


def profile_fields(p: HardwareProfile) -> list[tuple[str, Any]]:
    c, cal = p.cost, p.calibration
    return [
        ("profile", p.name),
        ("description", p.description or None),
        ("cpu", f"{p.cpu_model or '?'} ({p.cpu_cores or '?'} cores)"),
        ("ram", human_bytes(p.ram_bytes)),
        ("memory bandwidth", _gb(p.memory_bandwidth_bytes_per_s)),
        (
            "gpus",
            "\n".join(
                f"{g.name}  {human_bytes(g.memory_bytes)}  {_gb(g.bandwidth_bytes_per_s) or ''}"
                + (f"  {g.tdp_watts:g} W" if g.tdp_watts else "")
                for g in p.gpus
            )
            or "none",
        ),
        ("price", f"{c.purchase_price:,.0f} {c.currency} over {c.lifetime_years:g} years"),
        ("power", f"{c.power_watts:g} W at {c.electricity_per_kwh:g} {c.currency}/kWh"),
        ("upkeep", f"{c.upkeep_per_year:,.0f} {c.currency}/year"),
        (
            "calibration",
            f"{cal.model}: {cal.decode_tokens_per_s:.1f} tok/s decode, "
            f"{cal.prefill_tokens_per_s or 0:.1f} tok/s prefill ({cal.device}, "
            f"{cal.measured_at:%Y-%m-%d %H:%M})"
            if cal
            else "none (modelyard hardware detect with the default model imported)",
        ),
    ]


def _show(profile: HardwareProfile, as_json: bool) -> None:
    if as_json:
        print_json(profile.model_dump(mode="json"))
    else:
        print_fields(profile_fields(profile))


@app.callback()
def hardware(ctx: typer.Context) -> None:
    """Without a command: detect this machine and save it as the profile 'local'."""
    if ctx.invoked_subcommand is None:
        runtime = _runtime(ctx)
        cost = CostInputs(electricity_per_kwh=runtime.settings.electricity_per_kwh)
        _detect(runtime, "local", cost, as_json=False, power_watts=None)


@app.command("detect")
def detect_command(
    ctx: typer.Context,
    name: str = typer.Option("local", "--name", help="Profile name to save as."),
    model: str | None = typer.Option(
        None, "--model", help="Registered GGUF model to calibrate with (default gemma3-270m)."
    ),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="llama.cpp threads."),
    bandwidth_mb: int = typer.Option(256, "--bandwidth-mb", min=8, max=8192),
    price: float = PRICE,
    lifetime_years: float = LIFETIME,
    power_watts: float | None = POWER,
    electricity_per_kwh: float | None = ELECTRICITY,
    upkeep_per_year: float = UPKEEP,
    currency: str = CURRENCY,
    as_json: bool = JSON_OPTION,
) -> None:
    """Detect CPU, RAM and GPUs, measure memory bandwidth and a real model's speed; save."""
    runtime = _runtime(ctx)
    cost = _cost(
        runtime,
        currency=currency,
        price=price,
        lifetime_years=lifetime_years,
        power_watts=power_watts,
        electricity_per_kwh=electricity_per_kwh,
        upkeep_per_year=upkeep_per_year,
    )
    _detect(
        runtime,
        name,
        cost,
        as_json=as_json,
        power_watts=power_watts,
        model=model,
        calibrate=calibrate,
        threads=threads,
        bandwidth_mb=bandwidth_mb,
    )


def _detect(
    runtime: Runtime,
    name: str,
    cost: CostInputs,
    *,
    as_json: bool,
    power_watts: float | None,
    model: str | None = None,
    calibrate: bool = True,
    threads: int | None = None,
    bandwidth_mb: int = 256,
) -> None:
    def say(message: str) -> None:
        if not as_json:
            stderr().print(message)

    profile = local_profile(
        name,
        detect(),
        bandwidth_mb=bandwidth_mb,
        cost=cost,
        registry=runtime.registry if calibrate else None,
        model=model,
        n_threads=threads or runtime.settings.n_threads,
        say=say,
    )
    profile = _with_power(profile, power_watts)
    path = ProfileStore(runtime.settings).save(profile)
    say(f"saved profile [bold]{profile.name}[/] to {path}")
    _show(profile, as_json)


@app.command("add")
def add_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Profile name."),
    gpus: str | None = typer.Option(None, "--gpus", help="e.g. 2xH100-80GB or 1xMYGPU-24GB."),
    ram_gb: float | None = typer.Option(None, "--ram-gb", min=1),
    cpu: str | None = typer.Option(None, "--cpu", help="CPU model, for the record."),
    cores: int | None = typer.Option(None, "--cores", min=1),
    bandwidth_gbs: float | None = typer.Option(
        None, "--bandwidth-gbs", min=0.1, help="Main-memory bandwidth (data sheet)."
    ),
    gpu_bandwidth_gbs: float | None = typer.Option(
        None,
        "--gpu-bandwidth-gbs",
        min=0.1,
        help="GPU memory bandwidth: overrides the data sheet; needed for a GPU not in it.",
    ),
    description: str = typer.Option("", "--description"),
    price: float = PRICE,
    lifetime_years: float = LIFETIME,
    power_watts: float | None = POWER,
    electricity_per_kwh: float | None = ELECTRICITY,
    upkeep_per_year: float = UPKEEP,
    currency: str = CURRENCY,
    file: Path | None = typer.Option(None, "--file", help="A profile JSON file instead."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add (or replace) a profile of a machine the organisation is considering."""
    runtime = _runtime(ctx)
    store = ProfileStore(runtime.settings)
    if file is not None:
        profile = load_profile_file(file).model_copy(update={"name": name})
    else:
        if ram_gb is None:
            raise InvalidInput("give --ram-gb (or --file)", param="ram_gb")
        if gpu_bandwidth_gbs is not None and not gpus:
            raise InvalidInput("--gpu-bandwidth-gbs needs --gpus", param="gpu_bandwidth_gbs")
        profile = HardwareProfile(
            name=name,
            description=description,
            cpu_model=cpu,
            cpu_cores=cores,
            ram_bytes=int(ram_gb * GB),
            memory_bandwidth_bytes_per_s=bandwidth_gbs * GB if bandwidth_gbs else None,
            gpus=parse_gpus(gpus, bandwidth_gbs=gpu_bandwidth_gbs) if gpus else [],
            cost=_cost(
                runtime,
                currency=currency,
                price=price,
                lifetime_years=lifetime_years,
                power_watts=power_watts,
                electricity_per_kwh=electricity_per_kwh,
                upkeep_per_year=upkeep_per_year,
            ),
        )
        profile = _with_power(profile, power_watts)
    profile = HardwareProfile.model_validate(
        {**profile.model_dump(), "updated_at": datetime.now(UTC)}
    )
    store.save(profile)
    if not as_json:
        stderr().print(f"saved profile [bold]{profile.name}[/]")
    _show(profile, as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List hardware profiles."""
    profiles = ProfileStore(_runtime(ctx).settings).list()
    if as_json:
        print_json([p.model_dump(mode="json") for p in profiles])
        return
    print_table(
        None,
        ["PROFILE", "GPUS", "GPU MEMORY", "RAM", "BANDWIDTH", "PRICE", "CALIBRATED"],
        [
            [
                p.name,
                len(p.gpus),
                human_bytes(p.gpu_memory_bytes) if p.gpus else "",
                human_bytes(p.ram_bytes),
                _gb(p.gpu_bandwidth or p.cpu_bandwidth),
                f"{p.cost.purchase_price:,.0f} {p.cost.currency}",
                f"{p.calibration.decode_tokens_per_s:.1f} tok/s" if p.calibration else "",
            ]
            for p in profiles
        ],
    )


@app.command("show")
def show_command(
    ctx: typer.Context, name: str = typer.Argument("local"), as_json: bool = JSON_OPTION
) -> None:
    """Show one profile."""
    _show(ProfileStore(_runtime(ctx).settings).load(name), as_json)


@app.command("rm")
def rm_command(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Remove a profile."""
    ProfileStore(_runtime(ctx).settings).remove(name)
    stderr().print(f"removed profile {name}")
