"""The alert's option object: shapes expand to the legs a trader would write, and the
selection picks them from the chain (tests/support/chains.py: strikes 560-640 by 5,
underlying 600, call delta 0.5 - (K - 600) / 100)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from app.models.occ import OptionRight, expiry_date
from app.options.chains import OptionChains
from app.options.select import SelectionError, pick_expiration, select
from app.options.spec import OptionSpec
from tests.support.chains import FakeChains

NY_TODAY = expiry_date()  # expiries are New York dates

C, P = OptionRight.CALL, OptionRight.PUT


async def legs(spec: dict[str, Any], side: str = "buy") -> list[tuple[str, str, float, int]]:
    feed = FakeChains()
    chosen = await select(
        OptionSpec.model_validate(spec),
        "SPY",
        OptionChains(feed),
        NY_TODAY,
        opening_side=side,  # type: ignore[arg-type]
    )
    return [
        (s.quote.right.value, s.plan.side, float(s.quote.strike), s.plan.ratio) for s in chosen.legs
    ]


async def test_a_vertical_bought_is_a_debit_spread_width_dollars_out() -> None:
    got = await legs(
        {"shape": "vertical", "right": "call", "dte": 30, "atm_offset": 0, "width": 10}
    )
    assert got == [("call", "buy", 600.0, 1), ("call", "sell", 610.0, 1)]
    put = await legs(
        {"shape": "vertical", "right": "put", "dte": 30, "delta": 0.30, "width": 5}, "sell"
    )
    assert put == [("put", "sell", 580.0, 1), ("put", "buy", 575.0, 1)]  # a bull put spread


async def test_straddle_strangle_condor_and_butterfly() -> None:
    assert await legs({"shape": "straddle", "dte": 30}) == [
        ("call", "buy", 600.0, 1),
        ("put", "buy", 600.0, 1),
    ]
    assert await legs({"shape": "strangle", "dte": 30, "delta": 0.2}, "sell") == [
        ("call", "sell", 630.0, 1),
        ("put", "sell", 570.0, 1),
    ]
    assert await legs({"shape": "iron_condor", "dte": 30, "delta": 0.2, "width": 10}, "sell") == [
        ("put", "sell", 570.0, 1),
        ("put", "buy", 560.0, 1),
        ("call", "sell", 630.0, 1),
        ("call", "buy", 640.0, 1),
    ]
    assert await legs({"shape": "butterfly", "right": "call", "dte": 30, "width": 10}) == [
        ("call", "sell", 600.0, 2),
        ("call", "buy", 590.0, 1),
        ("call", "buy", 610.0, 1),
    ]


async def test_a_calendar_takes_each_legs_own_expiry() -> None:
    feed = FakeChains()
    spec = {
        "legs": [
            {"right": "call", "side": "sell", "strike": 600, "dte": 7},
            {"right": "call", "side": "buy", "strike": 600, "dte": 60},
        ]
    }
    chosen = await select(OptionSpec.model_validate(spec), "SPY", OptionChains(feed), NY_TODAY)
    assert [s.quote.expiration for s in chosen.legs] == [feed.listed[0], feed.listed[2]]


async def test_atm_offset_counts_listed_strikes_out_of_the_money() -> None:
    assert await legs({"right": "call", "dte": 30, "atm_offset": 2}) == [("call", "buy", 610.0, 1)]
    assert await legs({"right": "put", "dte": 30, "atm_offset": 2}) == [("put", "buy", 590.0, 1)]
    with pytest.raises(SelectionError, match="past the listed"):
        await legs({"right": "call", "dte": 30, "atm_offset": 50})


def test_expiry_by_dte_is_the_nearest_listed_and_a_tie_goes_later() -> None:
    today = date(2026, 12, 7)
    listed = [date(2026, 12, 11), date(2026, 12, 18), date(2027, 1, 15)]
    assert pick_expiration(listed, today, 10, None) == date(2026, 12, 18)  # 4 vs 11 days: 11
    assert pick_expiration(listed, today, 7, None) == date(2026, 12, 11)
    # 11 days exactly between 4 and 18: the later one
    listed = [date(2026, 12, 11), date(2026, 12, 25)]
    assert pick_expiration(listed, today, 11, None) == date(2026, 12, 25)
    with pytest.raises(SelectionError, match="nearest"):
        pick_expiration(listed, today, None, date(2026, 12, 24))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"right": "call", "dte": 30, "delta": 0.3, "strike": 600}, "not"),
        (
            {"right": "call", "dte": 30, "expiration": "2027-01-15", "delta": 0.3},
            "dte or expiration",
        ),
        ({"shape": "iron_condor", "dte": 30, "delta": 0.2}, "width"),
        ({"shape": "vertical", "dte": 30, "atm_offset": 0, "width": 5}, "right"),
        ({"right": "call", "dte": 30, "delta": 1.5}, "less than 1"),
        ({"legs": [{"right": "call", "side": "buy", "strike": 600}], "dte": 30}, "2 to 4 legs"),
    ],
)
def test_what_cannot_be_chosen_is_a_clear_error(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        OptionSpec.model_validate(spec)


def test_strikes_are_exact_decimals() -> None:
    spec = OptionSpec.model_validate({"right": "put", "dte": 30, "strike": "592.5"})
    assert spec.strike == Decimal("592.5")
