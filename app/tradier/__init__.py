"""Tradier connectors: the shared REST client and the JSON normalisation they rely on."""

from app.tradier.client import (
    PRODUCTION_URL,
    SANDBOX_URL,
    STREAM_URL,
    RateLimit,
    RetryPolicy,
    TradierAuthError,
    TradierClient,
    TradierError,
    TradierRetryableError,
)

__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "STREAM_URL",
    "RateLimit",
    "RetryPolicy",
    "TradierAuthError",
    "TradierClient",
    "TradierError",
    "TradierRetryableError",
]
