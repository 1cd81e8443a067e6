"""Local stand-ins for services tests cannot reach (only the live Tradier API)."""

from tests.fakes.tradier_server import FakeTradier, one_or_many, tradier_quote

__all__ = ["FakeTradier", "one_or_many", "tradier_quote"]
