"""The one FIFO matcher: a fill against the open lots of one (account, symbol).

Used by the ledger (the book of record), the analytics and the TradeNote journal, so a
round trip's P&L is computed one way everywhere. Lots are ``[signed quantity, price]``,
oldest first, all on one side (long or short).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

EPS = 1e-9

Lots = deque[list[float]]


def match(
    lots: Lots,
    signed: float,
    price: float,
    on_close: Callable[[float], None] | None = None,
) -> tuple[float, float]:
    """Close ``signed`` shares at ``price`` against opposite lots, oldest first.

    Returns (realised P&L, the part of ``signed`` left once the opposite lots are gone:
    the caller opens it as a new lot). ``on_close`` gets each matched slice as the
    signed change to the position (e.g. -5 when 5 long shares are sold).
    """
    realised = 0.0
    remaining = signed
    while abs(remaining) > EPS and lots and (lots[0][0] > 0) != (remaining > 0):
        lot = lots[0]
        closing = min(abs(remaining), abs(lot[0]))
        direction = 1 if lot[0] > 0 else -1
        realised += (price - lot[1]) * closing * direction
        lot[0] -= closing * direction
        remaining += closing * direction
        if on_close is not None:
            on_close(-closing * direction)
        if abs(lot[0]) <= EPS:
            lots.popleft()
    return realised, remaining
