"""app.notify.messages and outbox.watch_state: parsing stream entries and coalescing."""

from __future__ import annotations

from typing import Any

import orjson

from app.bus import Keys
from app.notify import outbox
from app.notify.messages import Event, parse, render


def _denial(i: int, check: str) -> dict[bytes, bytes]:
    d = {"alert_id": f"a{i}", "status": "denied", "account": "paper", "symbol": "AAPL"}
    d |= {"action": "buy", "quantity": 1, "check": check, "reason": "r", "time": 1.0}
    return {b"decision": orjson.dumps(d)}


def test_parse_fills_denials_outbox_and_skips_the_rest() -> None:
    fill = {"id": "f1", "account": "paper", "symbol": "AAPL", "intent": "buy_to_open"}
    fill |= {"quantity": 3, "price": 187.2, "strategy": "s"}
    e = parse(Keys.FILLS_STREAM, "1-0", {b"fill": orjson.dumps(fill)})
    assert e is not None and e.kind == "fill" and e.account == "paper"
    assert render("fill", [e]) == ("Fill on paper", "BUY TO OPEN 3 AAPL @ 187.20 (paper, s)")
    accepted = {b"decision": orjson.dumps({"alert_id": "x", "status": "accepted", "time": 1})}
    assert parse(Keys.ALERTS_STREAM, "2-0", accepted) is None
    ks = {b"kind": b"kill_switch", b"account": b"paper", b"data": b'{"state":"HALTED"}'}
    e = parse(Keys.NOTIFY_OUTBOX, "3-0", ks)
    assert e is not None and render("kill_switch", [e])[1] == "Kill switch HALTED on paper"


def test_200_denials_render_as_one_message_with_counts() -> None:
    events = [
        e
        for i in range(200)
        if (
            e := parse(Keys.ALERTS_STREAM, f"{i}-0", _denial(i, "kill_switch" if i % 4 else "rate"))
        )
    ]
    title, body = render("denial", events)
    assert title == "200 risk denials on paper"
    lines = body.splitlines()
    assert lines[0] == "By check: kill_switch x150, rate x50"
    assert len(lines) == 12 and lines[-1] == "... and 190 more"


async def test_watch_state_emits_only_changes() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    class FakeRedis:
        async def xadd(self, key: str, fields: dict[str, Any], **_: Any) -> None:
            sent.append((fields["kind"], orjson.loads(fields["data"])))

    r: Any = FakeRedis()
    # the shape of CircuitBreaker.snapshot()
    closed = {"circuit_breaker": {"state": "CLOSED", "trip_reason": None}}
    opened = {"circuit_breaker": {"state": "OPEN", "trip_reason": "broker_errors"}}
    await outbox.watch_state(r, "acct-w", closed, 0)
    await outbox.watch_state(r, "acct-w", opened, 0)
    await outbox.watch_state(r, "acct-w", opened, 2)
    await outbox.watch_state(r, "acct-w", opened, 3)
    await outbox.watch_state(r, "acct-w", closed, 0)
    assert sent == [
        ("breaker", {"state": "open", "reason": "broker_errors"}),
        ("unresolved", {"count": 2}),
        ("breaker", {"state": "closed", "reason": None}),
        ("unresolved", {"count": 0}),
    ]
    assert Event  # the event type is part of the module's surface
