"""``--journal``: a run's fills into TradeNote as an account of their own
(``backtest-<name>``), through the live journal's ``Journal.sync`` (the same documents,
round trips and x multiplier as a live account's), so a backtest sits beside the live
accounts in TradeNote's pages without mixing with them."""

from __future__ import annotations

from redis.asyncio import Redis

from app.config import Settings
from app.journal.service import journal_config, tradenote_client
from app.journal.sync import Journal, SyncResult
from app.models.orders import Fill


def account_name(run: str) -> str:
    return f"backtest-{run}"


async def journal_fills(
    settings: Settings, redis: Redis, fills: list[Fill], run: str
) -> SyncResult:
    """Write ``fills`` as TradeNote account ``backtest-<run>``; a second write of the same
    run adds nothing (the journal's ids are the fills')."""
    config = journal_config(settings)
    client = tradenote_client(settings)  # (ConfigError names a missing TRADEROPS_TRADENOTE_*)
    account = account_name(run)
    try:
        journal = Journal(client, redis, config, owner=account)
        return await journal.sync([f.model_copy(update={"account": account}) for f in fills])
    finally:
        await client.close()
