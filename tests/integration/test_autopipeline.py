"""The auto-pipeline against a real Redis: one round trip per turn, each reply (or error)
to its own caller, scripts reloaded after Redis lost them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.autopipeline import AutoPipeline

INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def test_commands_of_one_turn_go_in_one_round_trip_in_order(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = AutoPipeline(redis)
    sent: list[int] = []
    real = redis.pipeline

    def counting(*args: Any, **kw: Any) -> Any:
        sent.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(redis, "pipeline", counting)
    replies = await asyncio.gather(*(pipe.command("RPUSH", "l", str(i)) for i in range(50)))
    assert sent == [1]  # one pipeline for the 50
    assert replies == list(range(1, 51))  # queued order is execution order
    assert await redis.lrange("l", 0, -1) == [str(i).encode() for i in range(50)]
    await pipe.command("RPUSH", "l", "next")  # a later turn: its own round trip
    assert sent == [1, 1]


async def test_a_failing_command_fails_only_its_caller(redis: Redis) -> None:
    pipe = AutoPipeline(redis)
    await redis.set("s", "text")
    ok, bad, also = await asyncio.gather(
        pipe.command("SET", "a", "1"),
        pipe.command("INCR", "s"),  # not an integer: an error for this caller only
        pipe.command("GET", "a"),
        return_exceptions=True,
    )
    assert ok is True and also == b"1"
    assert isinstance(bad, ResponseError)


async def test_a_script_redis_lost_is_loaded_again(redis: Redis) -> None:
    script = AutoPipeline(redis).script(INCR_BY)
    assert await script(keys=["n"], args=[2]) == 2
    await redis.script_flush()  # a restarted Redis has no scripts
    assert await asyncio.gather(script(keys=["n"], args=[3]), script(keys=["n"], args=[4])) == [
        5,
        9,
    ]
    assert await redis.script_exists(script.sha) == [True]


async def test_a_lost_connection_fails_every_caller_of_the_batch() -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    pipe = AutoPipeline(dead)
    results = await asyncio.gather(
        pipe.command("SET", "a", "1"), pipe.command("GET", "a"), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results), results
    await dead.aclose()


@pytest.mark.parametrize("n", [1, 300])
async def test_batches_of_any_size(redis: Redis, n: int) -> None:
    pipe = AutoPipeline(redis)
    assert await asyncio.gather(*(pipe.command("INCR", "c") for _ in range(n))) == list(
        range(1, n + 1)
    )


async def test_the_connection_packs_what_redis_py_packs(redis_srv: Any) -> None:
    """Our connection packs with hiredis: every kind of argument the code sends reaches
    Redis as redis-py would have sent it, and what hiredis refuses gets redis-py's error."""
    from redis.exceptions import DataError

    from app.bus import create_redis

    client = create_redis(redis_srv.url)
    try:
        values: list[Any] = ["text", "é ü", b"\x00\xff", 7, -3, 0.1 + 0.2, 1e20, memoryview(b"mv")]
        for i, value in enumerate(values):
            await client.set(f"k{i}", value)
        got = await client.mget([f"k{i}" for i in range(len(values))])
        assert got == [
            b"text",
            "é ü".encode(),
            b"\x00\xff",
            b"7",
            b"-3",
            b"0.30000000000000004",
            b"1e+20",
            b"mv",
        ]
        assert await client.config_get("maxmemory")  # a command name with a space in it
        with pytest.raises(DataError):
            await client.set("k", None)  # type: ignore[arg-type]
    finally:
        await client.aclose()
