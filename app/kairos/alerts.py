"""Signals as datahub webhook alerts: a deterministic id, a canonical body, an HMAC signature.

The alert id is a hash of (job, symbol, action, bar time) and nothing else, so a retried
POST, a re-run after a crash or two replicas evaluating the same bar all produce the same
id, and the datahub's idempotency claim turns them into one order.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

from app.kairos.models import Signal

ALERT_ID_PREFIX = "kairos-"


def iso_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alert_id(job: str, symbol: str, action: str, bar_time: int) -> str:
    key = f"{job}\x1f{symbol}\x1f{action}\x1f{iso_time(bar_time)}".encode()
    return ALERT_ID_PREFIX + hashlib.sha256(key).hexdigest()[:32]


def alert_body(job: str, signal: Signal) -> dict[str, Any]:
    """The webhook JSON; optional fields are left out rather than sent as null."""
    body: dict[str, Any] = {
        "ticker": signal.symbol,
        "action": signal.action.value,
        "order_type": "market",
        "strategy": job,
        "alert_id": alert_id(job, signal.symbol, signal.action.value, signal.bar_time),
        "time": iso_time(signal.bar_time),
    }
    if signal.quantity is not None:
        body["quantity"] = signal.quantity
    if signal.stop_loss is not None:
        body["stop_loss"] = signal.stop_loss
    if signal.take_profit is not None:
        body["take_profit"] = signal.take_profit
    return body


def encode(body: dict[str, Any]) -> bytes:
    """Canonical bytes (sorted keys): the same alert always has the same signature."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign(key: bytes, raw: bytes) -> str:
    """Hex HMAC-SHA256 of the exact bytes sent, for the ``X-Signature`` header."""
    return hmac.new(key, raw, hashlib.sha256).hexdigest()


def verify(key: bytes, raw: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(key, raw), signature)
