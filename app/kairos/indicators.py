"""Indicators as small pure functions over plain lists.

Outputs are aligned with their input: ``None`` while the indicator warms up. Definitions
follow the published references the tests check against: Wilder's RSI (simple average of
the first ``period`` changes, then Wilder smoothing) as in StockCharts' worked example,
and Bollinger Bands with the *population* standard deviation, as StockCharts computes them.
Plain Python keeps them exact and dependency-free; 50 symbols x 200 bars is microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple


def sma(values: Sequence[float], period: int) -> list[float | None]:
    """Simple moving average; each window summed exactly (fsum) so no drift accumulates."""
    _check_period(period)
    out: list[float | None] = [None] * len(values)
    for i in range(period - 1, len(values)):
        out[i] = math.fsum(values[i - period + 1 : i + 1]) / period
    return out


def stdev(values: Sequence[float], period: int) -> list[float | None]:
    """Rolling population standard deviation (divide by N, as Bollinger specified)."""
    _check_period(period)
    out: list[float | None] = [None] * len(values)
    for i in range(period - 1, len(values)):
        window = values[i - period + 1 : i + 1]
        mean = math.fsum(window) / period
        out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in window) / period)
    return out


def rsi(closes: Sequence[float], period: int = 14) -> list[float | None]:
    """Wilder's Relative Strength Index; the first value is at index ``period``.

    No losses in the averaging window gives 100, no movement at all gives 50.
    """
    _check_period(period)
    out: list[float | None] = [None] * len(closes)
    if len(closes) <= period:
        return out
    gains = losses = 0.0
    for i in range(1, period + 1):
        change = closes[i] - closes[i - 1]
        gains += max(change, 0.0)
        losses += max(-change, 0.0)
    avg_gain, avg_loss = gains / period, losses / period
    out[period] = _rsi_value(avg_gain, avg_loss)
    for i in range(period + 1, len(closes)):
        change = closes[i] - closes[i - 1]
        avg_gain = (avg_gain * (period - 1) + max(change, 0.0)) / period
        avg_loss = (avg_loss * (period - 1) + max(-change, 0.0)) / period
        out[i] = _rsi_value(avg_gain, avg_loss)
    return out


def rsi_last(closes: Sequence[float], period: int = 14) -> float | None:
    """``rsi(closes, period)[-1]``, to the last bit, without building the series: what a
    strategy asks on every run (Wilder's averaging runs over the whole window either way)."""
    _check_period(period)
    n = len(closes)
    if n <= period:
        return None
    gains = losses = 0.0
    prev = closes[0]
    for i in range(1, period + 1):
        close = closes[i]
        change = close - prev
        prev = close
        if change > 0:
            gains += change
        else:
            losses -= change
    avg_gain, avg_loss = gains / period, losses / period
    keep = period - 1
    for i in range(period + 1, n):
        close = closes[i]
        change = close - prev
        prev = close
        if change > 0:
            avg_gain = (avg_gain * keep + change) / period
            avg_loss = avg_loss * keep / period
        else:
            avg_gain = avg_gain * keep / period
            avg_loss = (avg_loss * keep - change) / period
    return _rsi_value(avg_gain, avg_loss)


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0:
        return 100.0 if avg_gain > 0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class Band(NamedTuple):
    middle: float
    upper: float
    lower: float

    def percent_b(self, price: float) -> float | None:
        """Where ``price`` sits in the band: 0 at the lower band, 1 at the upper."""
        width = self.upper - self.lower
        return None if width == 0 else (price - self.lower) / width


def bollinger(closes: Sequence[float], period: int = 20, k: float = 2.0) -> list[Band | None]:
    """Bollinger Bands: SMA(period) +/- k population standard deviations."""
    mids, devs = sma(closes, period), stdev(closes, period)
    out: list[Band | None] = []
    for mid, dev in zip(mids, devs, strict=True):
        out.append(None if mid is None or dev is None else Band(mid, mid + k * dev, mid - k * dev))
    return out


def volume_ratio(volumes: Sequence[float], period: int = 20) -> float | None:
    """Last volume over the average of the ``period`` volumes before it (a breakout gauge)."""
    _check_period(period)
    if len(volumes) < period + 1:
        return None
    avg = math.fsum(volumes[-period - 1 : -1]) / period
    return None if avg <= 0 else volumes[-1] / avg


def _check_period(period: int) -> None:
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
