"""The API price table: shipped with a date and sources, overridable by the user."""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound

USER_FILE = "api_prices.json"


class ApiPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)
    source: HttpUrl | None = None

    def blended_per_1m(self, input_share: float) -> float:
        """Price of 1M tokens of which ``input_share`` are prompt tokens."""
        return input_share * self.input_per_1m + (1 - input_share) * self.output_per_1m


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date
    currency: str = "USD"
    note: str = ""
    prices: list[ApiPrice] = Field(min_length=1)
    origin: str = "shipped"

    def get(self, model: str) -> ApiPrice:
        for price in self.prices:
            if price.model == model:
                return price
        known = ", ".join(p.model for p in self.prices)
        raise NotFound(f"no API price for {model!r} (known: {known}); add it with --prices FILE")


def load_prices(settings: Settings, path: Path | None = None) -> PriceTable:
    """``--prices FILE`` if given, else ``$MODELYARD_HOME/api_prices.json``, else shipped."""
    user = path or settings.home / USER_FILE
    if path is not None or user.exists():
        try:
            text = user.read_text("utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read price table {user}: {exc.strerror}") from exc
        origin = str(user)
    else:
        text = resources.files("modelyard.cost").joinpath("data/api_prices.json").read_text()
        origin = "shipped"
    try:
        table = PriceTable.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInput(f"{origin} is not a valid price table: {exc}") from exc
    return table.model_copy(update={"origin": origin})
