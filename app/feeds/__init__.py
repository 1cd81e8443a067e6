"""Market-data feeds behind one protocol (``app.feeds.base.Feed``)."""

from __future__ import annotations

from app.config import Settings
from app.feeds.base import Feed


def make_feed(settings: Settings) -> Feed:
    """The one place that picks a concrete feed."""
    if settings.feed == "tradier":
        from app.feeds.tradier import TradierFeed

        return TradierFeed.from_settings(settings)
    from app.feeds.simulated import SimulatedFeed

    return SimulatedFeed(
        settings.symbols, seed=settings.sim_seed, quote_rate=settings.sim_quote_rate
    )
