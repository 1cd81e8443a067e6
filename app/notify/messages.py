"""Stream entries -> notification events -> one message per kind (coalesced)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

KINDS = ("fill", "denial", "kill_switch", "breaker", "unresolved")
TITLES = {
    "fill": "Fill",
    "denial": "Risk denial",
    "kill_switch": "Kill switch",
    "breaker": "Circuit breaker",
    "unresolved": "Execution unresolved",
}
MAX_LINES = 10


@dataclass(frozen=True)
class Event:
    stream: str
    entry_id: str
    kind: str
    account: str
    data: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(stream: str, entry_id: str, fields: dict[Any, Any]) -> Event | None:
    """The event an entry of the fills, alerts or outbox stream stands for, if any."""
    f = {_text(k): v for k, v in fields.items()}
    if "fill" in f:
        fill = orjson.loads(f["fill"])
        return Event(stream, entry_id, "fill", str(fill.get("account") or "default"), fill)
    if "decision" in f:
        decision = orjson.loads(f["decision"])
        if decision.get("status") != "denied" or decision.get("duplicate"):
            return None
        account = str(decision.get("account") or "default")
        return Event(stream, entry_id, "denial", account, decision)
    if "kind" in f:
        data = orjson.loads(f.get("data") or b"{}")
        return Event(stream, entry_id, _text(f["kind"]), _text(f.get("account", "default")), data)
    return None


def _fill_line(d: dict[str, Any]) -> str:
    side = str(d.get("intent", "")).replace("_", " ").upper()
    line = f"{side} {d.get('quantity')} {d.get('symbol')} @ {float(d.get('price', 0)):.2f}"
    return f"{line} ({d.get('account')}, {d.get('strategy', 'default')})"


def _denial_line(d: dict[str, Any]) -> str:
    what = " ".join(str(d[k]) for k in ("action", "quantity", "symbol") if d.get(k) is not None)
    return f"{what or d.get('alert_id')}: {d.get('check')}: {d.get('reason') or d.get('message')}"


def _state_line(e: Event) -> str:
    d = e.data
    if e.kind == "kill_switch":
        reason = f" ({d['reason']})" if d.get("reason") else ""
        return f"Kill switch {d.get('state')} on {e.account}{reason}"
    if e.kind == "breaker":
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"Circuit breaker {str(d.get('state')).upper()} on {e.account}{reason}"
    if e.kind == "unresolved":
        n = int(d.get("count", 0))
        if n == 0:
            return f"Executions on {e.account} resolved"
        return f"{n} execution(s) on {e.account} wait to learn whether Redis stored them"
    return f"{e.kind} on {e.account}: {d}"


def _listing(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]


def render(kind: str, events: list[Event]) -> tuple[str, str]:
    """(title, body) of one message for ``events``, all of ``kind``."""
    n = len(events)
    accounts = ", ".join(sorted({e.account for e in events}))
    if kind == "fill":
        title = f"{n} fills on {accounts}" if n > 1 else f"Fill on {accounts}"
        return title, "\n".join(_listing([_fill_line(e.data) for e in events]))
    if kind == "denial":
        title = f"{n} risk denials on {accounts}" if n > 1 else f"Risk denial on {accounts}"
        checks = Counter(str(e.data.get("check")) for e in events)
        summary = ", ".join(f"{c} x{k}" for c, k in checks.most_common())
        return title, "\n".join(
            [f"By check: {summary}", *_listing([_denial_line(e.data) for e in events])]
        )
    title = TITLES.get(kind, kind) + (f" ({n} changes)" if n > 1 else "") + f" on {accounts}"
    return title, "\n".join(_listing([_state_line(e) for e in events]))
