"""Holds Pricecast's answers on the seed app's paths against the seed app's pydantic models.

Usage: seed_contract.py REPLIES_JSON

REPLIES_JSON is a list of {"case", "path", "status", "body"}: the case names which seed answer
the reply must be (below), then the path asked, the status and the body exactly as the server
sent it. Each body is validated
from its raw JSON text in pydantic's strict mode, so a price sent as a string, a time that is not
ISO 8601, an integer sent as a float, a missing key or an object where the seed answered an array
all fail; keys Pricecast adds are allowed. History rows are also checked for the seed's order
(oldest first) and for `price_t+1` (null on the newest row, else the next row's price).

Prints {"replies": {path: "ok" or [what is wrong]}} and exits 0 when every reply holds; prints every failure to
stderr and exits 1 otherwise.
"""

import json
import sys
from datetime import datetime
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# The seed's Decimal prices arrive as JSON numbers; a strict float takes a JSON number (integer
# or not) and nothing else.
Price = float


class SeedModel(BaseModel):
    """Strict types; keys beyond the seed's are Pricecast's additions and allowed."""

    model_config = ConfigDict(strict=True, extra="allow")


# models/schemas.py of the seed app.
class LatestPriceResponse(SeedModel):
    price: Price
    timestamp: datetime
    source: str
    last_updated: datetime


class BitcoinPriceFeatureResponse(SeedModel):
    id: int
    price: Price
    timestamp: datetime
    source: str
    created_at: datetime
    price_t_plus_1: Optional[Price] = Field(alias="price_t+1")
    price_t_1: Optional[Price] = Field(alias="price_t-1")
    price_t_2: Optional[Price] = Field(alias="price_t-2")
    price_t_3: Optional[Price] = Field(alias="price_t-3")
    price_t_4: Optional[Price] = Field(alias="price_t-4")
    price_t_5: Optional[Price] = Field(alias="price_t-5")
    ma_10: Optional[Price]


# The dicts main.py returned.
class StatsResponse(SeedModel):
    period_hours: int
    total_records: int
    min_price: Price
    max_price: Price
    avg_price: Price
    latest_price: Price


class PredictionResponse(SeedModel):
    predicted_price: Price


class HealthResponse(SeedModel):
    status: str
    database: str


class RootResponse(SeedModel):
    message: str
    endpoints: dict[str, str]


class ErrorResponse(SeedModel):
    """FastAPI's HTTPException body."""

    detail: str


def history_order(rows):
    """The seed's order and `price_t+1`; returns what is wrong."""
    problems = []
    if not rows:
        return ["no rows"]
    for older, newer in zip(rows, rows[1:]):
        if not older.timestamp < newer.timestamp:
            problems.append(f"{older.timestamp} is not before {newer.timestamp}: not oldest first")
        if older.price_t_plus_1 is not None:
            if older.price_t_plus_1 != newer.price:
                problems.append(
                    f"price_t+1 of {older.timestamp} is {older.price_t_plus_1}, "
                    f"the next row's price is {newer.price}"
                )
            if newer.price_t_1 != older.price:
                problems.append(f"price_t-1 of {newer.timestamp} is not the previous row's price")
    if rows[-1].price_t_plus_1 is not None:
        problems.append(f"price_t+1 of the newest row is {rows[-1].price_t_plus_1}, not null")
    return problems


# case: (status, body type, further checks)
CASES = {
    "root": (200, RootResponse, None),
    "latest": (200, LatestPriceResponse, None),
    "history": (200, list[BitcoinPriceFeatureResponse], history_order),
    "stats": (200, StatsResponse, None),
    "predict": (200, PredictionResponse, None),
    "health": (200, HealthResponse, None),
    "not_found": (404, ErrorResponse, None),
}


def check(reply):
    status, body_type, further = CASES[reply["case"]]
    problems = []
    if reply["status"] != status:
        problems.append(f"status {reply['status']}, expected {status}")
    try:
        value = TypeAdapter(body_type).validate_json(reply["body"], strict=True)
    except ValidationError as e:
        return problems + [
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in e.errors()
        ]
    if further is not None:
        problems.extend(further(value))
    return problems


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        replies = json.load(f)
    results = {}
    failed = False
    for reply in replies:
        problems = check(reply)
        results[reply["path"]] = "ok" if not problems else problems
        for problem in problems:
            failed = True
            print(f"{reply['case']} {reply['path']}: {problem}", file=sys.stderr)
    print(json.dumps({"replies": results}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
