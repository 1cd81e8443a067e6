"""One writer per account: a lease in Redis with a fencing token.

The holder's value is ``<instance>:<fence>``, the fence a counter that grows with every
new holder. Every write the account's engine makes checks, in the same script, that the
lease still holds exactly that value (``ExecutionStore``): an engine that stalled past
its lease (GC pause, a frozen VM, a partition) and wakes up writes nothing.
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.bus import RELEASE_IF_HELD, RENEW_IF_HELD, Keys

_ACQUIRE = """
-- KEYS: lease, fence counter.  ARGV: instance, ttl ms
local v = redis.call('GET', KEYS[1])
if v then
  if string.match(v, '^([^:]+):') == ARGV[1] then  -- ours already (a retried call)
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return v
  end
  return false
end
local fence = redis.call('INCR', KEYS[2])
v = ARGV[1] .. ':' .. fence
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return v
"""


class AccountLease:
    def __init__(self, redis: Redis, account: str, instance: str, ttl_seconds: float) -> None:
        self.keys = Keys.account(account)
        self.instance = instance
        self.ttl_ms = int(ttl_seconds * 1000)
        self.value: str | None = None
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(RENEW_IF_HELD)
        self._release = redis.register_script(RELEASE_IF_HELD)

    async def acquire(self) -> str | None:
        """The lease value if we hold the account now, else None (another process does)."""
        raw = await self._acquire(
            keys=[self.keys.lease, self.keys.fence], args=[self.instance, self.ttl_ms]
        )
        self.value = raw.decode() if isinstance(raw, bytes) else raw
        return self.value

    async def renew(self) -> bool:
        """False once the lease is no longer ours (it ran out and another took it)."""
        if self.value is None:
            return False
        ok = bool(await self._renew(keys=[self.keys.lease], args=[self.value, self.ttl_ms]))
        if not ok:
            self.value = None
        return ok

    async def release(self) -> None:
        """Hand the account over at once (a clean stop), never someone else's lease."""
        if self.value is not None:
            await self._release(keys=[self.keys.lease], args=[self.value])
            self.value = None
