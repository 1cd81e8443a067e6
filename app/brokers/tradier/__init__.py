"""The Tradier adapter: one package, registered under ``tradier``.

``broker`` is ``TradierBroker`` (equity, option and multileg orders by tag, fills by polling through the shared
``app.brokers.polling.OrderPoller``, positions, balances); ``mapping`` Tradier's wire
format and errors; ``credentials`` its accounts-file block and factory. The REST client
and JSON normalising it shares with the Tradier feed live in ``app.tradier``.
"""

from __future__ import annotations

from app.brokers.registry import BrokerSpec, register
from app.brokers.tradier.broker import BROKER, TradierBroker
from app.brokers.tradier.credentials import TradierCredentials, build
from app.brokers.tradier.mapping import (
    STATUSES,
    TAG_RE,
    call_error,
    leg_report,
    map_status,
    multileg_form,
    option_form,
    order_form,
    order_report,
    place_error,
)

__all__ = [
    "BROKER",
    "STATUSES",
    "TAG_RE",
    "TradierBroker",
    "TradierCredentials",
    "build",
    "call_error",
    "leg_report",
    "map_status",
    "multileg_form",
    "option_form",
    "order_form",
    "order_report",
    "place_error",
]


register(
    BrokerSpec(
        "tradier",
        build,
        credentials=TradierCredentials,
        description="Tradier brokerage (equities, options, spreads; REST, order polling by tag)",
    )
)
