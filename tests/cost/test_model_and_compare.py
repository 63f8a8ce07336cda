"""The cost model and the API comparison, checked against hand arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.cost.compare import Throughput, compare
from modelyard.cost.model import HOURS_PER_MONTH, cost_per_million, hourly_cost, tokens_per_hour
from modelyard.cost.prices import ApiPrice, load_prices
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.profile import CostInputs

BOX = CostInputs(
    purchase_price=35_040,  # 35,040 / (4 years x 8,760 h) = 1.00 per hour
    lifetime_years=4,
    power_watts=1000,  # 1 kW x 0.25 per kWh = 0.25 per hour
    electricity_per_kwh=0.25,
    upkeep_per_year=8_760,  # 1.00 per hour
)
PRICE = ApiPrice(provider="X", model="m", input_per_1m=2.0, output_per_1m=10.0)


def test_hourly_cost_and_cost_per_million() -> None:
    hourly = hourly_cost(BOX)
    assert hourly.hardware == pytest.approx(1.0)
    assert hourly.power == pytest.approx(0.25)
    assert hourly.upkeep == pytest.approx(1.0)
    assert hourly.total == pytest.approx(2.25)
    # 100 tok/s at 50% = 180,000 tokens/h; 2.25 / 180,000 x 1e6 = 12.5 per 1M
    assert tokens_per_hour(100, 0.5) == pytest.approx(180_000)
    assert cost_per_million(BOX, 100, 0.5) == pytest.approx(12.5)
    with pytest.raises(InvalidInput, match="utilisation"):
        cost_per_million(BOX, 100, 0)


def test_blended_price_and_throughput() -> None:
    assert PRICE.blended_per_1m(0.75) == pytest.approx(0.75 * 2 + 0.25 * 10)
    mixed = Throughput(decode_tokens_per_s=100, prefill_tokens_per_s=1000)
    # 0.5 s/1000 + 0.5/100 = 0.0055 s per token -> 181.8 tok/s
    assert mixed.blended(0.5) == pytest.approx(1 / 0.0055)
    assert Throughput(100).blended(0.9) == 100


def test_compare_break_even_month_and_volume() -> None:
    result = compare(
        api_spend_per_year=120_000,  # 10,000 per month
        price=PRICE,
        cost=BOX,
        throughput=Throughput(decode_tokens_per_s=2000),
        utilisation=0.5,
        input_share=0.75,  # 4.0 per 1M -> 2.5e9 tokens per month
    )
    assert result.api_monthly == pytest.approx(10_000)
    assert result.api_price_per_1m == pytest.approx(4.0)
    assert result.tokens_per_month == pytest.approx(2.5e9)
    per_machine = 2000 * 3600 * 0.5 * HOURS_PER_MONTH  # 2.628e9
    assert result.machine_tokens_per_month == pytest.approx(per_machine)
    assert result.machines == 1
    cash = (0.25 + 1.0) * HOURS_PER_MONTH  # 912.5 per month
    assert result.self_host_monthly_cash == pytest.approx(cash)
    assert result.self_host_monthly_amortised == pytest.approx(2.25 * HOURS_PER_MONTH)
    # 35,040 + 912.5 m <= 10,000 m  ->  m >= 3.86  -> month 4
    assert result.break_even_month == 4
    # one machine's amortised month (1,642.5) buys 410.6M API tokens at 4.0 per 1M
    assert result.break_even_tokens_per_month == pytest.approx(2.25 * HOURS_PER_MONTH / 4 * 1e6)
    assert result.months[3] == {"month": 4, "api": 40_000, "self_host": 35_040 + 4 * cash}


def test_compare_when_self_hosting_never_wins() -> None:
    result = compare(
        api_spend_per_year=1_200,
        price=PRICE,
        cost=BOX,
        throughput=Throughput(decode_tokens_per_s=1),  # far too slow for its price
        horizon_months=12,
    )
    assert result.break_even_month is None
    assert result.break_even_tokens_per_month is None
    assert result.machines >= 1


def test_compare_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput, match="positive"):
        compare(api_spend_per_year=0, price=PRICE, cost=BOX, throughput=Throughput(10))


def test_price_table_shipped_and_overridden(sqlite_settings: Settings, tmp_path: Path) -> None:
    shipped = load_prices(sqlite_settings)
    assert shipped.origin == "shipped" and str(shipped.as_of) == "2025-06-01"
    assert all(p.source is not None for p in shipped.prices)
    assert shipped.get("gpt-4o").input_per_1m == 2.5
    with pytest.raises(NotFound, match="no API price for 'nope'"):
        shipped.get("nope")
    override = sqlite_settings.home / "api_prices.json"
    override.write_text(
        '{"as_of": "2026-11-01", "prices": [{"provider": "Us", "model": "in-house",'
        ' "input_per_1m": 1, "output_per_1m": 3}]}'
    )
    mine = load_prices(sqlite_settings)
    assert mine.origin == str(override) and mine.get("in-house").output_per_1m == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"as_of": "yesterday", "prices": []}')
    with pytest.raises(InvalidInput, match="not a valid price table"):
        load_prices(sqlite_settings, bad)
