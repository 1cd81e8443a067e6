"""The alert's ``option`` object: which contracts, as TradingView sends it.

Validated strictly (an unknown field is a 422 naming it): a trader who misspells
``delta`` must not get an at-the-money contract instead. Named shapes expand into the
same legs a trader could write out (:meth:`OptionSpec.plan`), so selection, pricing
and risk see one form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models.occ import OptionRight

MAX_LEGS = 4  # Tradier's limit for one multileg order
Shape = Literal["vertical", "straddle", "strangle", "iron_condor", "butterfly"]
LegSide = Literal["buy", "sell"]


class _Strike(BaseModel):
    """Exactly one way of choosing the strike (checked by the owner)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delta: float | None = Field(None, gt=0, lt=1, description="nearest absolute delta")
    strike: Decimal | None = Field(None, gt=0, lt=100_000, description="this listed strike")
    atm_offset: int | None = Field(
        None, ge=-50, le=50, description="listed strikes from the money; + = out of the money"
    )
    dte: int | None = Field(None, ge=0, le=3650, description="listed expiry nearest this many days")
    expiration: date | None = Field(None, description="this listed expiry (YYYY-MM-DD)")

    def _selectors(self) -> list[str]:
        return [n for n in ("delta", "strike", "atm_offset") if getattr(self, n) is not None]

    @model_validator(mode="after")
    def _one_expiry(self) -> _Strike:
        if self.dte is not None and self.expiration is not None:
            raise ValueError("give dte or expiration, not both")
        if len(self._selectors()) > 1:
            raise ValueError(f"give one of delta, strike or atm_offset, not {self._selectors()}")
        return self


class LegSpec(_Strike):
    """One leg of a spread as the alert writes it."""

    right: OptionRight
    side: LegSide
    ratio: int = Field(1, ge=1, le=10)

    @model_validator(mode="after")
    def _one_strike(self) -> LegSpec:
        if not self._selectors():
            raise ValueError("each leg needs one of delta, strike or atm_offset")
        return self


@dataclass(frozen=True, slots=True)
class LegPlan:
    """A leg to select: by its own strike rule, or ``width`` dollars from leg ``from_leg``
    (away from the money for the protective legs of the shapes)."""

    right: OptionRight
    side: LegSide
    ratio: int
    delta: float | None = None
    strike: Decimal | None = None
    atm_offset: int | None = None
    from_leg: int | None = None
    width: Decimal | None = None
    dte: int | None = None
    expiration: date | None = None


class OptionSpec(_Strike):
    """``right`` + a strike rule for one contract; ``legs`` (2-4) or a ``shape`` for a spread.

    ``dte``/``expiration`` here apply to every leg that does not give its own. Shapes:
    ``vertical`` (right, a strike rule for the near leg, ``width``), ``straddle``
    (at the money, or a strike rule), ``strangle`` (``delta`` for both sides),
    ``iron_condor`` (``delta`` of the short strikes, ``width`` of the wings),
    ``butterfly`` (right, a strike rule for the body, ``width`` of the wings). A ``buy``
    alert opens a shape long (debit vertical, long straddle...), ``sell`` short."""

    right: OptionRight | None = None
    legs: list[LegSpec] | None = None
    shape: Shape | None = None
    width: Decimal | None = Field(None, gt=0, lt=10_000, description="wing width in dollars")

    @model_validator(mode="before")
    @classmethod
    def _leg_count(cls, data: object) -> object:
        if isinstance(data, dict):
            legs = data.get("legs")
            if isinstance(legs, list) and not 2 <= len(legs) <= MAX_LEGS:
                raise ValueError(
                    f"a spread has 2 to {MAX_LEGS} legs (one multileg order), got {len(legs)}"
                )
        return data

    @model_validator(mode="after")
    def _shape_fields(self) -> OptionSpec:
        kinds = [k for k in ("legs", "shape") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise ValueError("give legs or shape, not both")
        if self.legs is not None:
            if self.right is not None or self._selectors():
                raise ValueError("with legs, right and the strike rule go in each leg")
            return self
        if self.shape is None:
            if self.right is None:
                raise ValueError("one contract needs right (call or put)")
            if not self._selectors():
                raise ValueError("one contract needs one of delta, strike or atm_offset")
            return self
        if self.shape in ("vertical", "butterfly"):
            if self.right is None:
                raise ValueError(f"a {self.shape} needs right (call or put)")
            if self.width is None:
                raise ValueError(f"a {self.shape} needs width (dollars between strikes)")
        if self.shape == "iron_condor" and (self.delta is None or self.width is None):
            raise ValueError("an iron_condor needs delta (short strikes) and width (wings)")
        if self.shape == "strangle" and self.delta is None:
            raise ValueError("a strangle needs delta (both sides)")
        return self

    @property
    def is_spread(self) -> bool:
        return self.legs is not None or self.shape is not None

    def plan(self, opening_side: LegSide = "buy") -> list[LegPlan]:
        """The legs to select; ``opening_side`` ``sell`` mirrors every side (a short shape,
        or explicit legs opened the other way round)."""
        flip = opening_side == "sell"

        def side(s: LegSide) -> LegSide:
            return ("sell" if s == "buy" else "buy") if flip else s

        if self.legs is not None:
            return [
                LegPlan(
                    leg.right,
                    side(leg.side),
                    leg.ratio,
                    leg.delta,
                    leg.strike,
                    leg.atm_offset,
                    dte=leg.dte if leg.dte is not None or leg.expiration else self.dte,
                    expiration=leg.expiration or (None if leg.dte is not None else self.expiration),
                )
                for leg in self.legs
            ]
        call, put = OptionRight.CALL, OptionRight.PUT
        rule = LegPlan(
            call,
            "buy",
            1,
            self.delta,
            self.strike,
            self.atm_offset,
            dte=self.dte,
            expiration=self.expiration,
        )
        at_money = (
            replace(rule, atm_offset=0)
            if self.delta is None and self.strike is None and self.atm_offset is None
            else rule
        )

        def leg(base: LegPlan, right: OptionRight, s: LegSide, **changes: object) -> LegPlan:
            return replace(base, right=right, side=side(s), **changes)  # type: ignore[arg-type]

        wing = replace(rule, delta=None, strike=None, atm_offset=None, width=self.width)
        if self.shape is None:
            assert self.right is not None
            return [leg(rule, self.right, "buy")]
        if self.shape == "vertical":
            assert self.right is not None
            return [leg(rule, self.right, "buy"), leg(wing, self.right, "sell", from_leg=0)]
        if self.shape in ("straddle", "strangle"):
            return [leg(at_money, call, "buy"), leg(at_money, put, "buy")]
        if self.shape == "iron_condor":  # bought: the mirror of the usual short condor
            return [
                leg(rule, put, "buy"),
                leg(wing, put, "sell", from_leg=0),
                leg(rule, call, "buy"),
                leg(wing, call, "sell", from_leg=2),
            ]
        assert self.shape == "butterfly" and self.right is not None and self.width is not None
        return [
            leg(at_money, self.right, "sell", ratio=2),
            leg(wing, self.right, "buy", from_leg=0, width=-self.width),
            leg(wing, self.right, "buy", from_leg=0),
        ]
