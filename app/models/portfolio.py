"""Positions and account state, as the engine holds them and the API shows them."""

from __future__ import annotations

from pydantic import BaseModel


class StrategyPosition(BaseModel):
    """One strategy's part of a symbol's position (FIFO of that strategy's own fills)."""

    strategy: str
    quantity: int | float  # signed: negative is short; fractional where the instrument allows
    avg_price: float
    realized_pnl: float = 0.0


class Position(BaseModel):
    """The account's position in a symbol (what the broker holds) and its strategies' parts,
    which sum to it."""

    symbol: str
    quantity: int | float  # signed: negative is short; fractional where the instrument allows
    avg_price: float
    realized_pnl: float = 0.0
    last_price: float | None = None
    multiplier: float = 1.0  # value of one unit of price per unit held (100: an option)
    strategies: list[StrategyPosition] = []

    @property
    def market_value(self) -> float:
        mark = self.last_price if self.last_price is not None else self.avg_price
        return self.quantity * mark * self.multiplier

    @property
    def unrealized_pnl(self) -> float:
        if self.last_price is None:
            return 0.0
        return (self.last_price - self.avg_price) * self.quantity * self.multiplier


class AccountState(BaseModel):
    account: str
    cash: float
    equity: float
    buying_power: float
    realized_pnl_today: float = 0.0
    unrealized_pnl: float = 0.0
    gross_exposure: float = 0.0
    open_positions: int = 0
