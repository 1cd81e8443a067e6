"""Choosing contracts from the live chain: the expiry by ``dte`` or date, the strike by
delta, listed strike or distance from the money, and the wings of a shape by width.

Every failure is a :class:`SelectionError` whose message names what is listed instead,
so a denial tells the trader what to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.models.occ import OptionRight
from app.options.chain import OptionChain, OptionQuote
from app.options.chains import OptionChains
from app.options.spec import LegPlan, LegSide, OptionSpec


class SelectionError(ValueError):
    """No listed contract matches the alert (the message says what is listed)."""


@dataclass(frozen=True, slots=True)
class SelectedLeg:
    plan: LegPlan
    quote: OptionQuote

    @property
    def buy(self) -> bool:
        return self.plan.side == "buy"


@dataclass(frozen=True, slots=True)
class Selection:
    """The contracts an alert names, with the chain data they were chosen from."""

    underlying: str
    legs: tuple[SelectedLeg, ...]
    underlying_price: float | None
    greeks_time: float | None  # the oldest greeks used (epoch seconds)


def pick_expiration(
    listed: Sequence[date], today: date, dte: int | None, expiration: date | None
) -> date:
    """``expiration`` if listed; else the listed expiry whose days to expiry are nearest
    ``dte`` (a tie: the later one). Expired dates never count."""
    live = sorted(d for d in listed if d >= today)
    if not live:
        raise SelectionError("no listed expiration from today on")
    if expiration is not None:
        if expiration in live:
            return expiration
        near = sorted(live, key=lambda d: abs((d - expiration).days))[:3]
        raise SelectionError(
            f"expiration {expiration} is not listed (nearest: {', '.join(map(str, sorted(near)))})"
        )
    if dte is None:
        raise SelectionError("give dte or expiration for the option")
    return min(live, key=lambda d: (abs((d - today).days - dte), -d.toordinal()))


def _away(right: OptionRight, strike: Decimal, width: Decimal) -> Decimal:
    """``width`` dollars out of the money from ``strike`` (calls up, puts down)."""
    return strike + width if right is OptionRight.CALL else strike - width


def pick_strike(
    chain: OptionChain, plan: LegPlan, price: float | None, anchor: OptionQuote | None = None
) -> OptionQuote:
    """The contract of ``plan.right`` in ``chain`` that ``plan``'s strike rule names."""
    side = chain.side(plan.right)
    if not side:
        raise SelectionError(f"{chain.underlying} {chain.expiration}: no {plan.right} listed")
    strikes = [q.strike for q in side]
    if plan.from_leg is not None:
        assert anchor is not None and plan.width is not None
        wanted = _away(plan.right, anchor.strike, plan.width)
        return _listed(chain, side, wanted)
    if plan.strike is not None:
        return _listed(chain, side, plan.strike)
    if plan.delta is not None:
        quoted = [q for q in side if q.delta is not None]
        if not quoted:
            raise SelectionError(
                f"{chain.underlying} {chain.expiration}: the chain has no greeks to pick "
                f"a {plan.delta} delta {plan.right} (use strike or atm_offset)"
            )
        target = plan.delta
        # nearest |delta|; a tie goes to the one further out of the money (less risk)
        return min(quoted, key=lambda q: (abs(abs(q.delta or 0.0) - target), abs(q.delta or 0.0)))
    assert plan.atm_offset is not None
    ref = price if price is not None else chain.underlying_price
    if ref is None:
        raise SelectionError(f"no price for {chain.underlying} to find the money")
    atm = min(range(len(strikes)), key=lambda i: (abs(float(strikes[i]) - ref), strikes[i]))
    step = plan.atm_offset if plan.right is OptionRight.CALL else -plan.atm_offset
    index = atm + step
    if not 0 <= index < len(side):
        raise SelectionError(
            f"{chain.underlying} {chain.expiration}: {plan.atm_offset} strikes from the money "
            f"({strikes[atm]}) is past the listed {strikes[0]}-{strikes[-1]}"
        )
    return side[index]


def _listed(chain: OptionChain, side: list[OptionQuote], wanted: Decimal) -> OptionQuote:
    for q in side:
        if q.strike == wanted:
            return q
    near = sorted(side, key=lambda q: abs(q.strike - wanted))[:4]
    raise SelectionError(
        f"{chain.underlying} {chain.expiration} {side[0].right} strike {wanted} is not listed "
        f"(nearest: {', '.join(str(q.strike) for q in sorted(near, key=lambda q: q.strike))})"
    )


async def select(
    spec: OptionSpec,
    underlying: str,
    chains: OptionChains,
    today: date,
    *,
    opening_side: LegSide = "buy",
    price: float | None = None,
) -> Selection:
    """The contracts ``spec`` names on ``underlying``'s chains (fetched through the cache)."""
    plans = spec.plan(opening_side)
    listed = await chains.expirations(underlying)
    chosen: list[SelectedLeg] = []
    used: list[OptionChain] = []
    for plan in plans:
        expiry = pick_expiration(listed, today, plan.dte, plan.expiration)
        chain = await chains.chain(underlying, expiry)
        used.append(chain)
        anchor = chosen[plan.from_leg].quote if plan.from_leg is not None else None
        chosen.append(SelectedLeg(plan, pick_strike(chain, plan, price, anchor)))
    symbols = [leg.quote.symbol for leg in chosen]
    if len(set(symbols)) != len(symbols):
        raise SelectionError(f"two legs chose the same contract ({', '.join(symbols)})")
    times = [t for t in (c.greeks_time for c in used) if t is not None]
    return Selection(
        underlying,
        tuple(chosen),
        price if price is not None else used[0].underlying_price,
        min(times) if times else None,
    )
