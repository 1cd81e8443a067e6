"""Plan a journal sync: a pure function from the stored days and the new fills to the
TradeNote documents to write. No I/O: ``app/journal/sync.py`` loads what a plan needs and
applies it.

For each touched day (in date order) the plan merges the new fills into the stored
executions (by fill id), continues the positions open at the end of the previous
journaled day, rebuilds round trips / blotter / P&L (``tradenote.build_day``: the FIFO
matcher) and checks the document against what TradeNote's UI needs. When a day's closing
positions change, the next journaled day is planned too (a cascade). A day the plan needs
but that was not loaded is reported in ``missing_docs`` / ``missing_eod``: the caller
loads it and plans again (planning is cheap and has no side effects).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from app.journal.tradenote import (
    JOURNAL_CALENDAR,
    Positions,
    build_day,
    check_day_document,
    day_fields,
    day_from_unix,
    day_unix,
    merge_executions,
    positions_to_json,
)
from app.models.orders import Fill
from app.sessions import trading_day

MAX_CASCADE_DAYS = 400


@dataclass(frozen=True)
class JournalConfig:
    username: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    calendar: str = JOURNAL_CALENDAR  # whose session dates are the trading days

    def account_for(self, fill: Fill) -> str:
        """TradeNote account name: each trading account is its own TradeNote account."""
        return fill.account

    def date_unix(self, fill: Fill) -> int:
        """The fill's TradeNote day (``dateUnix``): its trading day (``app.sessions``, the
        same day risk and the ledger use) at midnight in the user's time zone."""
        return day_unix(trading_day(fill.time, self.calendar), self.tz)


@dataclass
class Stored:
    """What the journal has already written, as far as it was loaded."""

    journaled: set[int]  # every day the journal has written (Redis)
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)  # dateUnix -> document
    docs_loaded: set[int] = field(default_factory=set)  # days looked up (doc or not)
    eod: dict[int, Positions] = field(default_factory=dict)  # positions at each day's end
    eod_loaded: set[int] = field(default_factory=set)


@dataclass
class DayWrite:
    day: int
    request: dict[str, Any]  # one Parse /batch request
    carry_out: Positions  # positions open at the end of the day


@dataclass
class Plan:
    accounts: list[str] = field(default_factory=list)  # must be in _User.accounts first
    writes: list[DayWrite] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # duplicate day documents to delete
    closed_carried: list[tuple[int, str, int]] = field(default_factory=list)
    executions_added: int = 0
    duplicates_merged: list[tuple[int, str, str]] = field(default_factory=list)
    missing_docs: set[int] = field(default_factory=set)
    missing_eod: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return not self.missing_docs and not self.missing_eod


def fills_by_day(
    fills: Iterable[Fill], config: JournalConfig, rebuild_days: Iterable[int] = ()
) -> dict[int, list[Fill]]:
    by_day: dict[int, list[Fill]] = defaultdict(list)
    for fill in fills:
        by_day[config.date_unix(fill)].append(fill)
    for d in rebuild_days:
        by_day.setdefault(int(d), [])
    return dict(by_day)


def needed_days(
    by_day: Mapping[int, Sequence[Fill]], journaled: set[int]
) -> tuple[set[int], set[int]]:
    """The documents and end-of-day positions a plan of these days reads first."""
    docs = set(by_day)
    eod = {d for d in by_day if d in journaled}
    for day in by_day:
        earlier = [d for d in journaled if d < day]
        if earlier:
            eod.add(max(earlier))
    return docs, eod


def plan_sync(
    stored: Stored, by_day: Mapping[int, Sequence[Fill]], config: JournalConfig, user: Any
) -> Plan:
    """The documents to write for these fills (``user``: its ``pointer`` and ``acl``)."""
    plan = Plan(accounts=sorted({config.account_for(f) for fs in by_day.values() for f in fs}))
    built_carry: dict[int, Positions] = {}
    to_build = set(by_day)
    cascades = 0

    def eod(day: int) -> Positions | None:
        if day not in stored.eod_loaded:
            plan.missing_eod.add(day)
            return None
        return stored.eod.get(day, {})

    while to_build:
        day = min(to_build)
        to_build.discard(day)
        carry_in: Positions | None = {}
        earlier = [d for d in stored.journaled | set(built_carry) if d < day]
        if earlier:
            prev = max(earlier)
            carry_in = built_carry[prev] if prev in built_carry else eod(prev)
        if day not in stored.docs_loaded:
            plan.missing_docs.add(day)
        if carry_in is None or not plan.complete:
            return plan
        doc = stored.docs.get(day)
        existing = list((doc or {}).get("executions") or [])
        for dup in (doc or {}).get("_duplicates", []):
            plan.duplicates_merged.append(
                (day, str(dup.get("objectId")), str(doc and doc.get("objectId")))
            )
            existing = unique_executions([*existing, *(dup.get("executions") or [])])
            plan.stale.append(str(dup.get("objectId")))
        executions, added = merge_executions(
            existing, by_day.get(day, []), config.account_for, config.tz, config.calendar
        )
        plan.executions_added += added
        build = build_day(executions, carry_in, day)
        built_carry[day] = build.carry_out
        plan.closed_carried.extend(build.closed_carried)
        fields = day_fields(build, day_from_unix(day, config.tz))
        check_day_document(fields, day)
        if doc is None:
            body = {**fields, "user": user.pointer, "ACL": user.acl, "dateUnix": day}
            request = {"method": "POST", "path": "classes/trades", "body": body}
        else:
            request = {"method": "PUT", "path": f"classes/trades/{doc['objectId']}", "body": fields}
        plan.writes.append(DayWrite(day=day, request=request, carry_out=build.carry_out))
        # closing positions changed: the next journaled day must continue from them
        before: Positions | None = None
        if day in stored.journaled:
            before = eod(day)
            if before is None:
                return plan
        if before is None or positions_to_json(before) != positions_to_json(build.carry_out):
            later = [d for d in stored.journaled if d > day]
            if later and cascades < MAX_CASCADE_DAYS:
                nxt = min(later)
                if nxt not in built_carry:
                    to_build.add(nxt)
                    cascades += 1
    return plan


def unique_executions(executions: list[Any]) -> list[Any]:
    """First occurrence of each execution (by fill id, else by execution id)."""
    seen: set[str] = set()
    out = []
    for e in executions:
        key = str(e.get("fillId") or e.get("id"))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
