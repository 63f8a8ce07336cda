"""The federated recipe: the sites, the rounds, the strategy and the per-round training.

Like :class:`~modelyard.tune.recipe.LoraRecipe`, a typed record whose fields are the whole
configuration; it is saved in the run folder and copied into the new version's lineage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelyard.catalog.names import validate_name
from modelyard.errors import InvalidInput
from modelyard.tune.recipe import DEFAULT_TARGETS, KNOWN_TARGETS

STRATEGIES = ("fedavg", "fedprox")


@dataclass(frozen=True)
class Site:
    name: str
    data: Path
    """The site's training JSONL: read only by that site's process."""


@dataclass(frozen=True)
class FederatedRecipe:
    base: str
    """The base version, ``NAME@N`` (resolved before the recipe is built)."""
    name: str
    """The name the aggregated, merged model is registered under."""
    sites: tuple[Site, ...]
    rounds: int = 3
    strategy: str = "fedavg"
    proximal_mu: float = 0.0
    """FedProx's proximal weight (``strategy = fedprox``)."""
    min_sites: int | None = None
    """Sites a round needs to begin and to aggregate (default: all of them)."""
    round_timeout_s: float = 900.0
    """A round aggregates the replies it has after this long (a site that dropped out)."""
    steps_per_round: int = 8
    lr: float = 1e-3
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    layers: int | None = None
    max_seq_len: int = 256
    batch_size: int = 4
    seed: int = 0
    threads: int | None = None
    """CPU threads per site's training (several sites share one machine in a local run)."""

    def __post_init__(self) -> None:
        validate_name(self.name)
        names = [s.name for s in self.sites]
        checks = (
            (len(self.sites) >= 2, "--sites needs at least two sites"),
            (len(set(names)) == len(names), "--sites names each site once"),
            (self.rounds >= 1, "--rounds must be at least 1"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}"),
            (self.proximal_mu >= 0, "--proximal-mu must be 0 or more"),
            (
                self.strategy != "fedprox" or self.proximal_mu > 0,
                "--strategy fedprox needs --proximal-mu above 0",
            ),
            (
                self.min_sites is None or 1 <= self.min_sites <= len(self.sites),
                f"--min-sites must be between 1 and the number of sites ({len(self.sites)})",
            ),
            (self.round_timeout_s > 0, "--round-timeout must be positive"),
            (self.steps_per_round >= 1, "--steps-per-round must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.rank >= 1 and self.alpha > 0, "--rank and --alpha must be positive"),
            (0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)"),
            (self.layers is None or self.layers >= 1, "--layers must be at least 1"),
            (self.max_seq_len >= 8 and self.batch_size >= 1, "--max-seq-len ≥ 8, --batch-size ≥ 1"),
            (not set(self.target_modules) - KNOWN_TARGETS, "unknown --target-modules"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)
        for site in self.sites:
            validate_name(site.name, what="site name")

    @property
    def quorum(self) -> int:
        return self.min_sites or len(self.sites)

    def site_recipe(self) -> dict[str, Any]:
        """What every site trains with each round (the site-round spec's ``recipe``)."""
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": list(self.target_modules),
            "layers": self.layers,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "max_seq_len": self.max_seq_len,
            "steps": self.steps_per_round,
            "seed": self.seed,
            "threads": self.threads,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["sites"] = [s.name for s in self.sites]  # names only: a site's path is its own
        return data
