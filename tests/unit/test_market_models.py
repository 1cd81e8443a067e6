from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.models.market import Resolution, is_valid_symbol, normalize_symbol


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", "1"), ("D", "1D"), ("1d", "1D"), ("W", "1W"), ("M", "1M"), ("60", "60"), ("240", "240")],
)
def test_resolution_accepts_tradingview_spellings(raw: str, expected: str) -> None:
    assert Resolution.parse(raw).value == expected


@pytest.mark.parametrize("raw", ["7", "", "1S", "abc", "1Y"])
def test_resolution_rejects_unknown_with_the_supported_list(raw: str) -> None:
    with pytest.raises(ValueError, match="use one of 1, 5, 15"):
        Resolution.parse(raw)


def test_bar_start_for_each_period() -> None:
    t = ts(2026, 11, 19, 15, 37, 42)  # a Thursday
    assert Resolution.M5.bar_start(t) == ts(2026, 11, 19, 15, 35)
    assert Resolution.H1.bar_start(t) == ts(2026, 11, 19, 15)
    assert Resolution.D1.bar_start(t) == ts(2026, 11, 19)
    assert Resolution.W1.bar_start(t) == ts(2026, 11, 16)  # Monday
    assert Resolution.MN1.bar_start(t) == ts(2026, 11, 1)
    assert Resolution.MN1.next_bar_start(ts(2026, 12, 1)) == ts(2027, 1, 1)


def test_symbols_are_normalised_and_validated() -> None:
    assert normalize_symbol(" nasdaq:aapl ") == "AAPL"
    assert is_valid_symbol("BRK.B")
    assert not is_valid_symbol("AAPL;DROP")
    assert not is_valid_symbol("")
