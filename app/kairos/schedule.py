"""When a job fires: cron in the exchange's wall-clock time, filtered by the session policy.

Cron is walked over *naive local* times and each match converted to UTC, so a 09:35 job
stays at 09:35 New York time across daylight-saving changes. A wall time that does not
exist (spring forward) is skipped; one that happens twice (fall back) runs once, at its
first occurrence. Outside the allowed window the walk jumps to the next session instead
of stepping minute by minute, so "next fire" stays cheap over weekends and holidays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from croniter import croniter

from app.kairos.calendar import TradingCalendar
from app.kairos.jobs import JobSpec, SessionPolicy, SessionSpec

#: Give up looking for a fire time this far ahead (a cron that never meets the policy).
HORIZON = timedelta(days=370)
MAX_STEPS = 200_000


def job_jitter(name: str, max_seconds: float) -> timedelta:
    """A stable per-job delay in [0, max_seconds): spreads jobs sharing a cron minute, and
    is the same on every restart so fire times (and alert ids) never wander."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    frac = int.from_bytes(digest, "big") / 2**64
    return timedelta(milliseconds=round(frac * max_seconds * 1000))


class JobSchedule:
    """Nominal fire times of one job (UTC, without jitter) and the misfire rule."""

    def __init__(
        self,
        cron: str,
        calendar: TradingCalendar,
        session: SessionSpec,
        *,
        jitter: timedelta = timedelta(0),
        grace: timedelta = timedelta(seconds=120),
    ) -> None:
        self.cron = cron
        self.calendar = calendar
        self.session = session
        self.jitter = jitter
        self.grace = grace
        self.tz = calendar.tz

    @classmethod
    def for_job(cls, spec: JobSpec, calendar: TradingCalendar) -> JobSchedule:
        return cls(
            spec.schedule,
            calendar,
            spec.session,
            jitter=job_jitter(spec.name, spec.jitter_seconds),
            grace=timedelta(seconds=spec.misfire_grace_seconds),
        )

    # -- cron in local wall time ----------------------------------------------------
    def _local(self, t: datetime) -> datetime:
        return t.astimezone(self.tz).replace(tzinfo=None)

    def _to_utc(self, naive: datetime) -> datetime | None:
        """UTC of a local wall time, or None when the wall time does not exist (DST gap)."""
        utc = naive.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        return utc if self._local(utc) == naive else None

    def allowed(self, t: datetime) -> bool:
        """Does the session policy let a fire at ``t`` run?"""
        policy = self.session.policy
        if policy is SessionPolicy.ALWAYS:
            return True
        if policy is SessionPolicy.REGULAR:
            return self.calendar.is_open(t)
        sess = self.calendar.session(self.calendar.local_date(t))
        return sess is not None and t >= sess.close + timedelta(minutes=self.session.offset_minutes)

    def _resume_from(self, t: datetime) -> datetime | None:
        """Where the next allowed fire can be at the earliest, given ``t`` is not allowed."""
        policy = self.session.policy
        if policy is SessionPolicy.REGULAR:
            return self.calendar.next_open(t)
        offset = timedelta(minutes=self.session.offset_minutes)
        day = self.calendar.local_date(t)
        sess = self.calendar.session(day)
        if sess is not None and t < sess.close + offset:
            return sess.close + offset
        nxt = self.calendar.next_session(day + timedelta(days=1))
        return None if nxt is None else nxt.close + offset

    def next_fire(self, after: datetime) -> datetime | None:
        """The first allowed fire time strictly after ``after`` (UTC-aware), or None."""
        limit = after + HORIZON
        base = self._local(after)
        it = croniter(self.cron, base)
        for _ in range(MAX_STEPS):
            naive: datetime = it.get_next(datetime)
            t = self._to_utc(naive)
            if t is None or t <= after:  # DST gap, or the second pass of a repeated hour
                continue
            if t > limit:
                return None
            if self.allowed(t):
                return t
            resume = self._resume_from(t)
            if resume is None or resume > limit:
                return None
            # croniter's get_next is strictly after its base: step back so `resume` can match
            it = croniter(self.cron, self._local(resume) - timedelta(seconds=1))
        return None

    def fires(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Fire times in (start, end]: for ``list``, tests and misfire accounting."""
        t: datetime | None = start
        while t is not None:
            t = self.next_fire(t)
            if t is None or t > end:
                return
            yield t

    def due(self, nominal: datetime) -> datetime:
        return nominal + self.jitter

    def runnable(self, nominal: datetime, now: datetime) -> bool:
        """May a fire that was due at ``nominal`` still run at ``now``?

        Within the grace period, and (for ``regular``) only while the session is still open:
        a run missed at 15:55 must not trade at 16:01.
        """
        if now - self.due(nominal) > self.grace:
            return False
        if self.session.policy is SessionPolicy.REGULAR:
            return self.calendar.is_open(now)
        return True
