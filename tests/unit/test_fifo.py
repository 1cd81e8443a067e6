"""The one FIFO matcher the ledger, the analytics and the journal share."""

from __future__ import annotations

from collections import deque

import pytest

from app.portfolio.fifo import match


def test_a_sell_closes_the_oldest_lots_first_and_returns_what_it_reverses() -> None:
    lots = deque([[10, 100.0], [5, 110.0]])
    closed: list[float] = []
    realised, left = match(lots, -18, 120.0, closed.append)
    assert realised == pytest.approx(10 * 20 + 5 * 10)  # oldest lot at 100 first
    assert left == -3  # the rest opens a short (the caller's job)
    assert closed == [-10, -5] and not lots


def test_a_cover_realises_short_pnl_and_a_same_side_fill_matches_nothing() -> None:
    lots = deque([[-4, 50.0]])
    assert match(lots, 1, 45.0) == (pytest.approx(5.0), 0)
    assert lots == deque([[-3, 50.0]])
    assert match(lots, -2, 40.0) == (0.0, -2)  # adds to the short: nothing to close
    assert lots == deque([[-3, 50.0]])
