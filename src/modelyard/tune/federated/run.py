"""``modelyard tune federated``: sites tune one LoRA adapter together, with Flower.

The coordinator (this process) never reads a site's data. It writes the starting adapter and
the training settings, starts Flower's runtime (``runtime.py``: a SuperLink, one SuperNode
per site, the ServerApp that aggregates with FedAvg or FedProx), and waits. Each round every
site trains the adapter on its own rows (``site_round.py``) and sends back only the adapter's
matrices, its example count and its dataset's SHA-256. At the end the aggregated adapter is
merged into the base and registered through intake; its lineage names the base, each site
with its dataset's SHA-256 and example count, the rounds, the strategy and who took part in
each round, so an auditor can see which sites contributed without seeing their data.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.atomic_write import write_text
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.tune.federated.recipe import FederatedRecipe
from modelyard.tune.federated.runtime import SiteSpec, run_federation
from modelyard.tune.federated.site_round import (
    initial_adapter,
    merge_adapter,
    read_adapter,
    write_adapter,
)
from modelyard.tune.lora import import_merged

APP_DIR = Path(__file__).parent / "flower_app"
PhaseCallback = Callable[[str], None]


@dataclass(frozen=True)
class FederatedOutcome:
    version: ModelVersion
    work_dir: Path
    report: dict[str, Any]


def work_dir_for(settings: Settings, recipe: FederatedRecipe, base_digest: str) -> Path:
    key = json.dumps({**recipe.to_json(), "base_digest": base_digest}, sort_keys=True)
    return settings.home / "tune" / "federated" / hashlib.sha256(key.encode()).hexdigest()[:16]


def flower_version(flower_bin: Path) -> str:
    """The Flower release in the Flower venv (from its installed metadata's folder name)."""
    found = sorted(flower_bin.parent.glob("lib/python*/site-packages/flwr-*.dist-info"))
    return found[-1].name.removeprefix("flwr-").removesuffix(".dist-info") if found else "?"


def _check_sites(recipe: FederatedRecipe) -> None:
    """A local run only checks that each site's file is there; its rows are the site's."""
    missing = [f"{s.name}: {s.data}" for s in recipe.sites if not s.data.is_file()]
    if missing:
        raise InvalidInput(f"no such data file for {'; '.join(missing)}", param="data")


def _site_lineage(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per site: the dataset SHA-256 and example count it reported, and the rounds it joined."""
    sites: dict[str, dict[str, Any]] = {}
    for entry in report.get("rounds", []):
        for reply in entry.get("replied", []):
            site = sites.setdefault(
                reply["site"],
                {"site": reply["site"], "dataset_sha256": None, "examples": None, "rounds": []},
            )
            site["dataset_sha256"] = reply.get("dataset-sha256")
            site["examples"] = reply.get("num-examples")
            site["rounds"].append(entry["round"])
    return [sites[name] for name in sorted(sites)]


def run_federated(
    recipe: FederatedRecipe,
    registry: Registry,
    settings: Settings,
    *,
    created_by: str | None = None,
    on_phase: PhaseCallback | None = None,
    on_line: Callable[[str], None] | None = None,
) -> FederatedOutcome:
    say = on_phase or (lambda _message: None)
    base = registry.resolve(recipe.base)
    if base.format != "gguf":
        raise InvalidInput(f"{base.ref} is a {base.format} model; LoRA tuning takes a GGUF base")
    _check_sites(recipe)
    base_path = registry.blobs.path_for(base.files[0].sha256)
    work = work_dir_for(settings, recipe, base.digest)
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "config.json", json.dumps({**recipe.to_json(), "base_digest": base.digest}))
    write_text(work / "base-metadata.json", json.dumps(base.metadata, default=str))
    spec = {
        "base": str(base_path),
        "metadata": str(work / "base-metadata.json"),
        "recipe": recipe.site_recipe(),
    }
    write_text(work / "site-spec.json", json.dumps(spec))
    say("initialising the adapter every site starts from")
    write_adapter(work / "init.npz", initial_adapter(base_path, recipe.site_recipe(), recipe.seed))
    sites = [
        SiteSpec(
            site.name,
            {
                "site": site.name,
                "data": str(site.data.resolve()),
                "python": sys.executable,
                "work": str(work / "sites" / site.name),
                "spec": str(work / "site-spec.json"),
            },
        )
        for site in recipe.sites
    ]
    run_config: dict[str, str | int | float | bool] = {
        "rounds": recipe.rounds,
        "strategy": recipe.strategy,
        "proximal-mu": recipe.proximal_mu,
        "min-sites": recipe.quorum,
        "round-timeout": recipe.round_timeout_s,
        "init": str(work / "init.npz"),
        "out": str(work / "aggregate.npz"),
        "report": str(work / "report.json"),
    }
    say(f"running {recipe.rounds} rounds with {len(sites)} sites (Flower)")
    run_federation(
        flower_bin=settings.resolved_flower_bin,
        app_dir=APP_DIR,
        work=work / "flower",
        sites=sites,
        run_config=run_config,
        timeout_s=recipe.rounds * (recipe.round_timeout_s + 120) + 300,
        on_line=on_line,
    )
    report = json.loads((work / "report.json").read_text())
    arrays = read_adapter(work / "aggregate.npz")
    say("merging the aggregated adapter and writing an F16 GGUF")
    merged = merge_adapter(base_path, recipe.site_recipe(), arrays, work / "merged-f16.gguf")
    lineage = {
        "method": "federated-lora",
        "base": base.ref,
        "base_digest": base.digest,
        "framework": f"flower {flower_version(settings.resolved_flower_bin)}",
        "strategy": recipe.strategy,
        "proximal_mu": recipe.proximal_mu if recipe.strategy == "fedprox" else None,
        "rounds": recipe.rounds,
        "min_sites": recipe.quorum,
        "sites": _site_lineage(report),
        "participation": [
            {
                "round": r["round"],
                "replied": sorted(str(x["site"]) for x in r.get("replied", [])),
                "missing": sorted(
                    str(x.get("site") or f"node {x.get('node-id')}") for x in r.get("missing", [])
                ),
            }
            for r in report.get("rounds", [])
        ],
        "differential_privacy": None,
        "hyperparameters": recipe.site_recipe(),
        "export": "aggregated adapter merged into the base and written as an F16 GGUF",
        "run_dir": str(work),
    }
    say("importing the merged model through intake")
    version = import_merged(
        merged, recipe.name, registry, settings, base=base, lineage=lineage, created_by=created_by
    )
    write_text(work / "result.json", json.dumps({"version": version.ref, **lineage}, indent=2))
    return FederatedOutcome(version, work, report)
