"""What an hour of a machine costs, and what that makes a million tokens cost."""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.errors import InvalidInput
from modelyard.hardware.profile import CostInputs

HOURS_PER_YEAR = 24 * 365
HOURS_PER_MONTH = HOURS_PER_YEAR / 12


@dataclass(frozen=True)
class HourlyCost:
    hardware: float
    """Purchase price spread evenly over the machine's lifetime."""
    power: float
    upkeep: float

    @property
    def total(self) -> float:
        return self.hardware + self.power + self.upkeep


def hourly_cost(cost: CostInputs) -> HourlyCost:
    return HourlyCost(
        hardware=cost.purchase_price / (cost.lifetime_years * HOURS_PER_YEAR),
        power=cost.power_watts / 1000 * cost.electricity_per_kwh,
        upkeep=cost.upkeep_per_year / HOURS_PER_YEAR,
    )


def tokens_per_hour(tokens_per_second: float, utilisation: float) -> float:
    if not 0 < utilisation <= 1:
        raise InvalidInput("utilisation must be in (0, 1]", param="utilisation")
    if tokens_per_second <= 0:
        raise InvalidInput("tokens per second must be positive", param="tokens_per_second")
    return tokens_per_second * 3600 * utilisation


def cost_per_million(cost: CostInputs, tokens_per_second: float, utilisation: float) -> float:
    """(Amortised hardware + power + upkeep per hour) / tokens served per hour, per 1M tokens."""
    return hourly_cost(cost).total / tokens_per_hour(tokens_per_second, utilisation) * 1e6
