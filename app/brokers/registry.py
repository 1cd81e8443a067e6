"""Brokers register themselves here: a new broker is one module (or package) under
``app/brokers/`` that calls ``register`` with its spec, and the settings
(``TRADEROPS_BROKER``), the accounts file (``broker:`` and the broker's own credentials
block), the wiring and the console pick it up. Capabilities are declared on the broker
class (``keeps_book``, ``redelivers_fills``: ``app/brokers/base.py``), never probed for.

Names are found without importing the brokers (``pkgutil``), so reading settings stays
cheap; a broker's module is imported when its spec is first needed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.brokers.base import Broker
    from app.config import Settings
    from app.models.market import Quote

# modules of this package that are not brokers
_NOT_BROKERS = frozenset({"base", "registry", "credentials", "polling"})


class Credentials(Protocol):
    """A broker's block in the accounts file (``tradier: {...}``): secrets by file, env
    variable name or systemd credential, never inline."""

    def relative_to(self, base: Any) -> None:
        """Make file paths relative to the accounts file's directory."""

    def check(self) -> None:
        """Read every secret now; raise ``CredentialsError`` naming the field."""


@dataclass(frozen=True, slots=True)
class BrokerContext:
    """What a broker factory is given: the settings, Redis, a quote source, and the
    account (its id, and its credentials block or None for the plain settings)."""

    settings: Settings
    redis: Redis
    quote: Callable[[str], Awaitable[Quote | None]]
    account_id: str
    credentials: BaseModel | None


@dataclass(frozen=True, slots=True)
class BrokerSpec:
    name: str
    build: Callable[[BrokerContext], Broker]
    credentials: type[BaseModel] | None = None  # its accounts-file block; None: none needed
    description: str = ""


_SPECS: dict[str, BrokerSpec] = {}


def register(spec: BrokerSpec) -> BrokerSpec:
    """Called by a broker's module at import: declares its name, factory, credentials."""
    _SPECS[spec.name] = spec
    return spec


def names() -> list[str]:
    """Every broker: the modules of this package (not imported) and any registered."""
    import app.brokers as package

    found = {
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_BROKERS
    }
    return sorted(found | set(_SPECS))


def check_name(name: str) -> str:
    """``name`` if it is a broker, else ``ValueError`` naming the known ones (settings and
    the accounts file validate with it)."""
    if name not in names():
        raise ValueError(f"unknown broker {name!r} (known: {', '.join(names())})")
    return name


def get(name: str) -> BrokerSpec:
    """The spec of ``name`` (importing its module); ``KeyError`` naming the known ones."""
    if name not in _SPECS and name in names():
        importlib.import_module(f"app.brokers.{name}")
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown broker {name!r} (known: {', '.join(names())})") from None


def unregister(name: str) -> None:
    """Forget a registered broker (a plug-in that is unloaded; tests)."""
    _SPECS.pop(name, None)
