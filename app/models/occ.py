"""OCC option symbols (OSI): the one place they are parsed and formatted.

``SPY261218C00600000`` is root ``SPY``, expiry 2026-12-18, a call, strike 600.000: the
root (1-6 characters), ``YYMMDD``, ``C``/``P`` and the strike in thousandths of a dollar
on 8 digits. The padded form (root filled to 6 characters with spaces, as the OCC and
some brokers print it) parses too; :func:`format_occ` writes the compact form unless asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from zoneinfo import ZoneInfo

#: Date, right and strike: the fixed-width tail after the root.
_TAIL = 15
_ROOT_MAX = 6
_STRIKE_SCALE = 1000
_STRIKE_LIMIT = 10**8  # 8 digits of thousandths


EXPIRY_TZ = ZoneInfo("America/New_York")  # listed expiries are New York dates


def expiry_date(ts: float | None = None) -> date:
    """The New York date of ``ts`` (default: now): the calendar expiries are listed in and
    days to expiry are counted by (0DTE, ``dte``, the soonest listed expiry)."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, EXPIRY_TZ).date()


class OptionRight(StrEnum):
    CALL = "call"
    PUT = "put"

    @property
    def letter(self) -> str:
        return "C" if self is OptionRight.CALL else "P"


@dataclass(frozen=True, slots=True)
class OccSymbol:
    """The four fields an OCC symbol carries (the root is usually the underlying's ticker)."""

    underlying: str
    expiry: date
    right: OptionRight
    strike: Decimal

    def __str__(self) -> str:
        return format_occ(self)


def _bad(raw: str, problem: str) -> ValueError:
    return ValueError(f"invalid OCC option symbol {raw!r}: {problem}")


def _check_root(root: str, raw: str) -> None:
    if not root:
        raise _bad(raw, "missing underlying root")
    if len(root) > _ROOT_MAX:
        raise _bad(raw, f"root {root!r} is longer than {_ROOT_MAX} characters")
    if not (root.isascii() and root.isalnum() and root.isupper() and root[0].isalpha()):
        raise _bad(
            raw, f"root {root!r} must be upper-case letters and digits, starting with a letter"
        )


def parse_occ(raw: str) -> OccSymbol:
    """Fields of an OCC symbol; a ``ValueError`` names what is wrong."""
    text = raw.strip().upper()
    if len(text) <= _TAIL:
        raise _bad(raw, f"too short ({len(text)} characters; root + 15 expected)")
    head, tail = text[:-_TAIL], text[-_TAIL:]
    root = head.rstrip(" ")
    _check_root(root, raw)
    yymmdd, letter, digits = tail[:6], tail[6], tail[7:]
    if not (yymmdd.isascii() and yymmdd.isdigit()):
        raise _bad(raw, f"expiry {yymmdd!r} is not YYMMDD digits")
    try:
        expiry = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        raise _bad(raw, f"expiry {yymmdd!r} is not a calendar date") from None
    if letter not in ("C", "P"):
        raise _bad(raw, f"right {letter!r} must be C or P")
    if not (digits.isascii() and digits.isdigit()):
        raise _bad(raw, f"strike {digits!r} is not 8 digits")
    thousandths = int(digits)
    if thousandths == 0:
        raise _bad(raw, "strike is zero")
    right = OptionRight.CALL if letter == "C" else OptionRight.PUT
    return OccSymbol(root, expiry, right, Decimal(thousandths).scaleb(-3))


def format_occ(contract: OccSymbol, *, padded: bool = False) -> str:
    """The OCC symbol of ``contract``; ``padded`` fills the root to 6 characters (OSI)."""
    root = contract.underlying
    label = repr(root)
    _check_root(root, label)
    if not 2000 <= contract.expiry.year <= 2099:
        raise _bad(label, f"expiry year {contract.expiry.year} outside 2000-2099")
    try:
        scaled = Decimal(contract.strike) * _STRIKE_SCALE
        exact = scaled == scaled.to_integral_value()
    except InvalidOperation:
        exact = False
    if not exact:
        raise _bad(label, f"strike {contract.strike} is not a multiple of 0.001")
    thousandths = int(scaled)
    if not 0 < thousandths < _STRIKE_LIMIT:
        raise _bad(label, f"strike {contract.strike} outside 0.001-99999.999")
    head = root.ljust(_ROOT_MAX) if padded else root
    right = OptionRight(contract.right)
    return f"{head}{contract.expiry:%y%m%d}{right.letter}{thousandths:08d}"


def is_occ(raw: str) -> bool:
    """Cheap shape test (no exceptions) so a registry can route symbols without try/except."""
    text = raw.strip().upper()
    n = len(text)
    if not _TAIL < n <= _TAIL + _ROOT_MAX:
        return False
    tail = text[-_TAIL:]
    return (
        text.isascii()
        and tail[:6].isdigit()
        and tail[6] in "CP"
        and tail[7:].isdigit()
        and text[:-_TAIL].rstrip(" ").isalnum()
        and text[0].isalpha()
    )
