"""Webhook intake checks that come before a decision: the source allow-list (with the
scheduler's own signed alerts always let through) and the freshness of the alert's time.

* Allow-list: with ``TRADEROPS_WEBHOOK_ALLOW_IPS`` set, other sources are refused (403),
  except a request carrying ``X-Signature`` from ``TRADEROPS_SCHEDULER_ADDRESSES``
  (default loopback): kairos posts signed alerts from there, and the signature is then
  verified like any other (a wrong one is 401). So hardening the webhook never stops
  the built-in strategies.
* Freshness: ``time`` older than ``TRADEROPS_WEBHOOK_MAX_AGE_SECONDS`` (default: the
  idempotency window, ``TRADEROPS_ALERT_TTL_SECONDS``, 7 days) or more than
  ``FUTURE_SKEW_SECONDS`` ahead is refused (422), so an alert replayed after its id was
  forgotten is refused rather than run again. HMAC-signed alerts must carry ``time``.
"""

from __future__ import annotations

import time
from datetime import datetime

from app.config import Settings
from app.datahub.security import source_allowed

FUTURE_SKEW_SECONDS = 300.0


def source_refusal(addr: str, signed: bool, settings: Settings) -> str | None:
    """Why this source may not post alerts, or ``None``."""
    if not settings.webhook_allow_ips or source_allowed(addr, settings.webhook_allow_ips):
        return None
    if signed and source_allowed(addr, settings.scheduler_addresses):
        return None  # the scheduler: its signature is checked next
    return f"source address {addr} is not allowed"


def max_age(settings: Settings) -> float:
    return float(settings.webhook_max_age_seconds or settings.alert_ttl_seconds)


def freshness_problem(
    alert_time: datetime | None, signed: bool, settings: Settings, now: float | None = None
) -> str | None:
    """Why the alert's ``time`` makes it unacceptable, or ``None``."""
    if alert_time is None:
        return 'signed alerts must carry "time" (ISO 8601 or Unix seconds)' if signed else None
    age = (time.time() if now is None else now) - alert_time.timestamp()
    limit = max_age(settings)
    if age > limit:
        return (
            f"stale alert: time is {age:.0f}s old (max {limit:.0f}s, "
            "TRADEROPS_WEBHOOK_MAX_AGE_SECONDS)"
        )
    if age < -FUTURE_SKEW_SECONDS:
        return f"alert time is {-age:.0f}s in the future (max {FUTURE_SKEW_SECONDS:.0f}s)"
    return None
