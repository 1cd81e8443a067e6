"""``POST /webhook/tradingview``: authenticate, de-duplicate, risk-check, answer fast.

TradingView posts the alert message as the body, sends no custom headers and gives
up after 3 s; kairos signs the raw body with HMAC-SHA256 in ``X-Signature``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from redis.exceptions import RedisError

from app.config import Settings
from app.datahub.deps import services_of
from app.datahub.errors import WebhookRejection
from app.datahub.intake_guards import freshness_problem, source_refusal
from app.datahub.openapi import alert_request_body
from app.datahub.ratelimit import SourceRateLimiter
from app.datahub.security import client_address, constant_time_equals, verify_hmac
from app.execution.intake import TakenIn
from app.models.alerts import AccountDecision, Alert, Decision, WebhookAnswer
from app.observability.metrics import WEBHOOK_ALERTS, WEBHOOK_LATENCY

router = APIRouter(tags=["webhook"])
log = logging.getLogger(__name__)

PATH = "/webhook/tradingview"  # app/datahub/bodyguard.py leaves its body to it
MAX_BODY = 64 * 1024
FORMAT_HINT = (
    'send a JSON alert message, e.g. {"passphrase": "...", "ticker": "{{ticker}}", '
    '"action": "buy|sell|exit|flatten", "quantity": 10, "alert_id": "{{timenow}}"}'
)


def _reject(status: int, error: str, outcome: str, **extra: Any) -> JSONResponse:
    WEBHOOK_ALERTS.labels(outcome).inc()
    return JSONResponse({"status": "rejected", "error": error, **extra}, status_code=status)


def _limiter(request: Request, settings: Settings) -> SourceRateLimiter:
    limiter: SourceRateLimiter | None = getattr(request.app.state, "webhook_limiter", None)
    if limiter is None:
        limiter = SourceRateLimiter(
            settings.webhook_rate_per_source, settings.webhook_burst_per_source
        )
        request.app.state.webhook_limiter = limiter
    return limiter


async def _read_body(request: Request) -> bytes | None:
    """The raw body, or None once it passes 64 KiB (stop reading early)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    PATH,
    response_model=WebhookAnswer,
    status_code=200,
    openapi_extra=alert_request_body(),
    responses={
        202: {
            "model": WebhookAnswer,
            "description": "accepted (the order id is in the answer), or queued: taken in "
            "durably, decision not ready within TRADEROPS_INTAKE_WAIT_SECONDS",
        },
        401: {"model": WebhookRejection, "description": "wrong passphrase or signature"},
        403: {"model": WebhookRejection, "description": "source address not allowed"},
        413: {"model": WebhookRejection, "description": "body over 64 KiB"},
        422: {"model": WebhookRejection, "description": "malformed or invalid alert"},
        429: {"model": WebhookRejection, "description": "too many alerts from this source"},
        503: {
            "model": WebhookRejection,
            "description": "state store unavailable: retry later (the retry answers with the "
            "stored decision if there is one; nothing is placed twice)",
        },
    },
)
async def tradingview(request: Request) -> Response:
    """Take one alert; answer with the decision (accepted with order id, denied with reason)."""
    started = time.perf_counter()
    services = services_of(request)
    settings = services.settings
    addr = client_address(request, settings.trusted_proxies)
    refusal = source_refusal(addr, "x-signature" in request.headers, settings)
    if refusal is not None:
        log.warning("webhook from a source not on the allow-list", extra={"source": addr})
        return _reject(403, refusal, "forbidden")
    wait = _limiter(request, settings).allow(addr)
    if wait:
        WEBHOOK_ALERTS.labels("rate_limited").inc()
        return JSONResponse(
            {"status": "rejected", "error": f"too many alerts from {addr}; retry in {wait:.1f}s"},
            status_code=429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    body = await _read_body(request)
    if body is None:
        return _reject(413, f"body too large (max {MAX_BODY // 1024} KiB)", "too_large")
    signature = request.headers.get("x-signature")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _reject(422, f"the alert message is not JSON: {FORMAT_HINT}", "malformed")
    if not isinstance(data, dict):
        return _reject(422, f"the alert message must be a JSON object: {FORMAT_HINT}", "malformed")

    hmac_key, passphrase = settings.webhook_hmac_key, settings.webhook_passphrase
    if signature is not None:
        if hmac_key is None or not verify_hmac(hmac_key.get_secret_value(), body, signature):
            log.warning("webhook with a bad signature")
            return _reject(401, "bad X-Signature", "unauthorized")
    elif passphrase is not None:
        given = data.get("passphrase")
        if not isinstance(given, str) or not constant_time_equals(
            given, passphrase.get_secret_value()
        ):
            log.warning("webhook with a wrong or missing passphrase")
            return _reject(401, "wrong or missing passphrase", "unauthorized")
    elif hmac_key is not None:
        return _reject(401, "missing X-Signature", "unauthorized")
    else:
        return _reject(
            503,
            "webhook disabled: set TRADEROPS_WEBHOOK_PASSPHRASE or TRADEROPS_WEBHOOK_HMAC_KEY",
            "disabled",
        )

    try:
        alert = Alert.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return _reject(422, "invalid alert", "invalid", errors=errors)
    stale = freshness_problem(alert.time, signature is not None, settings)
    if stale is not None:
        return _reject(422, stale, "stale")
    if await services.feed.resolve(alert.ticker) is None:
        return _reject(422, f"unknown symbol {alert.ticker!r}", "unknown_symbol")

    targets = services.intake.route(alert)
    if not targets:
        return _reject(
            422, f"no route for strategy {alert.strategy!r} in the accounts file", "no_route"
        )
    try:
        taken = await services.intake.submit(alert, targets, _content(data))
    except (RedisError, OSError) as exc:  # the take-in may have landed (a lost reply)
        log.error("webhook: state store unavailable: %s", exc)
        return _reject(
            503,
            "state store unavailable while taking the alert in: retry later (a retry "
            "answers with what was stored; nothing is placed twice)",
            "unavailable",
        )
    decision = _answer(taken)
    WEBHOOK_ALERTS.labels("duplicate" if decision.duplicate else decision.status).inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    return Response(
        decision.model_dump_json(exclude_none=True),
        status_code=202 if decision.status in ("accepted", "queued") else 200,
        media_type="application/json",
    )


def _content(data: dict[str, Any]) -> bytes:
    """The alert as received, less its passphrase: what names an alert without ``alert_id``
    (every field counts, unknown ones too: a different ``{{close}}`` is a different alert)."""
    # (what orjson read it writes back: the same types, the same integer range)
    return orjson.dumps(
        {k: v for k, v in data.items() if k != "passphrase"}, option=orjson.OPT_SORT_KEYS
    )


def _answer(taken: TakenIn) -> WebhookAnswer:
    """The first routed account's decision on top (as with one account), every account's
    in ``decisions``; an account whose engine has not decided yet is ``queued``."""
    now = time.time()
    parts: list[Decision] = [
        d
        if d is not None
        else Decision(
            alert_id=taken.alert_id,
            account=account,
            status="queued",
            message="taken in; not decided yet: GET /api/v1/alerts/{alert_id} for the decision",
            time=now,
            duplicate=taken.duplicate,
        )
        for account, d in zip(taken.accounts, taken.decisions, strict=True)
    ]
    return WebhookAnswer(
        **parts[0].model_dump(),
        decisions=[
            AccountDecision(
                account=d.account or account,
                status=d.status,
                order_id=d.order_id,
                quantity=d.quantity,
                check=d.check,
                reason=d.reason,
            )
            for account, d in zip(taken.accounts, parts, strict=True)
        ],
    )
