"""Self-hosting against an API bill: monthly cost on each side, break-even month and volume."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modelyard.cost.model import HOURS_PER_MONTH, hourly_cost, tokens_per_hour
from modelyard.cost.prices import ApiPrice
from modelyard.errors import InvalidInput
from modelyard.hardware.profile import CostInputs


@dataclass(frozen=True)
class Throughput:
    """Sustained tokens per second one machine serves, prompt and generated tokens apart."""

    decode_tokens_per_s: float
    prefill_tokens_per_s: float | None = None
    source: str = ""

    def blended(self, input_share: float) -> float:
        """Tokens per second for a mix with ``input_share`` prompt tokens."""
        if self.prefill_tokens_per_s is None:
            return self.decode_tokens_per_s
        seconds = input_share / self.prefill_tokens_per_s
        seconds += (1 - input_share) / self.decode_tokens_per_s
        return 1 / seconds


@dataclass(frozen=True)
class Comparison:
    currency: str
    api_model: str
    api_price_per_1m: float
    api_monthly: float
    tokens_per_month: float
    machine_tokens_per_month: float
    machines: int
    self_host_monthly_amortised: float
    self_host_monthly_cash: float
    upfront: float
    self_host_per_1m: float
    break_even_month: int | None
    break_even_tokens_per_month: float | None
    utilisation: float
    input_share: float
    throughput_source: str
    months: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    *,
    api_spend_per_year: float,
    price: ApiPrice,
    cost: CostInputs,
    throughput: Throughput,
    utilisation: float = 0.5,
    input_share: float = 0.8,
    horizon_months: int = 36,
) -> Comparison:
    if api_spend_per_year <= 0:
        raise InvalidInput("--api-spend-per-year must be positive", param="api_spend_per_year")
    if not 0 <= input_share <= 1:
        raise InvalidInput("input share must be in [0, 1]", param="input_share")
    if horizon_months < 1:
        raise InvalidInput("horizon must be at least one month", param="months")
    api_monthly = api_spend_per_year / 12
    blended_price = price.blended_per_1m(input_share)
    if blended_price <= 0:
        raise InvalidInput(f"the API price of {price.model} is zero")
    tokens_per_month = api_monthly / blended_price * 1e6
    per_machine = tokens_per_hour(throughput.blended(input_share), utilisation) * HOURS_PER_MONTH
    machines = max(1, math.ceil(tokens_per_month / per_machine))
    hourly = hourly_cost(cost)
    amortised = machines * hourly.total * HOURS_PER_MONTH
    cash = machines * (hourly.power + hourly.upkeep) * HOURS_PER_MONTH
    upfront = machines * cost.purchase_price
    months = []
    break_even = None
    for month in range(1, horizon_months + 1):
        api_total = api_monthly * month
        self_total = upfront + cash * month
        months.append({"month": month, "api": api_total, "self_host": self_total})
        if break_even is None and self_total <= api_total:
            break_even = month
    one_machine = hourly.total * HOURS_PER_MONTH
    volume = one_machine / blended_price * 1e6
    return Comparison(
        currency=cost.currency,
        api_model=price.model,
        api_price_per_1m=blended_price,
        api_monthly=api_monthly,
        tokens_per_month=tokens_per_month,
        machine_tokens_per_month=per_machine,
        machines=machines,
        self_host_monthly_amortised=amortised,
        self_host_monthly_cash=cash,
        upfront=upfront,
        self_host_per_1m=one_machine / per_machine * 1e6,
        break_even_month=break_even,
        break_even_tokens_per_month=volume if volume <= per_machine else None,
        utilisation=utilisation,
        input_share=input_share,
        throughput_source=throughput.source,
        months=months,
    )
