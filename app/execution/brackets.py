"""Stop-loss / take-profit exits the engine manages for filled entries (brackets).

Pure: the engine offers quotes and acts on the exits returned. The brackets live in the
engine's memory and are rebuilt from the account's stored orders when an engine takes
the account over, so a fail-over does not drop a stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.models.alerts import Alert, AlertAction
from app.models.orders import Order, OrderStatus

REASONS = ("stop_loss", "take_profit")


@dataclass(slots=True)
class Bracket:
    symbol: str
    long: bool
    stop: float | None
    target: float | None
    strategy: str


def exit_alert_id(entry_id: str, reason: str) -> str:
    """The exit's alert id: one per entry and reason, so an exit is placed once."""
    return f"{entry_id}-{reason}"


class Brackets:
    def __init__(self) -> None:
        self.open: dict[str, Bracket] = {}  # entry order id -> its exits

    def add(self, order: Order) -> None:
        """A filled entry with a stop or target: manage its exit."""
        req = order.request
        if order.status is OrderStatus.FILLED and (req.stop_loss or req.take_profit):
            self.open[order.id] = Bracket(
                req.symbol, req.side.sign > 0, req.stop_loss, req.take_profit, req.strategy
            )

    def triggered(self, symbol: str, last: float) -> list[Alert]:
        """Exits this price hits (each bracket at most once)."""
        out = []
        for entry_id, b in list(self.open.items()):
            if b.symbol != symbol:
                continue
            hit_stop = b.stop is not None and (last <= b.stop if b.long else last >= b.stop)
            hit_target = b.target is not None and (last >= b.target if b.long else last <= b.target)
            if hit_stop or hit_target:
                del self.open[entry_id]
                reason = "stop_loss" if hit_stop else "take_profit"
                out.append(
                    Alert(
                        ticker=b.symbol,
                        action=AlertAction.EXIT,
                        strategy=b.strategy,
                        alert_id=exit_alert_id(entry_id, reason),
                    )
                )
        return out
