"""Tracing: context through Redis-stream-shaped messages, log correlation, instrumentation.

The global tracer provider can be set once per process, so this module installs one
in-memory exporter at import (other modules may add their own processors to the same
provider) and clears it before every test.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.observability import tracing
from app.observability.logging import JsonFormatter
from app.observability.tracing import (
    extract_context,
    inject_context,
    instrument_app,
    setup_tracing,
    tracer,
)
from tests.servers import free_port


class Recorder(SimpleSpanProcessor):
    """Exports only while a test of this module runs: the provider outlives the module,
    and other tests' spans must not pile up in memory here."""

    active = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            super().on_end(span)


EXPORTER = InMemorySpanExporter()
PROCESSOR = Recorder(EXPORTER)
setup_tracing("trader-ops-tests", span_processor=PROCESSOR)


@pytest.fixture(autouse=True)
def _record_spans() -> Iterator[None]:
    EXPORTER.clear()
    PROCESSOR.active = True
    yield
    PROCESSOR.active = False
    EXPORTER.clear()


def finished(name: str | None = None) -> list[ReadableSpan]:
    return [s for s in EXPORTER.get_finished_spans() if name is None or s.name == name]


def ids(span: ReadableSpan) -> tuple[int, int]:
    ctx = span.get_span_context()
    assert ctx is not None
    return ctx.trace_id, ctx.span_id


def sampled_traceparent(header: str) -> tuple[int, int]:
    """(trace id, parent span id) of a W3C traceparent with the sampled flag set."""
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 0x01  # 0x02 is the random-trace-id flag
    return int(trace_id, 16), int(span_id, 16)


# -- context across a Redis stream entry ----------------------------------------------


def test_trace_continues_through_a_stream_entry() -> None:
    with tracer.start_as_current_span("engine.fill") as producer:
        fields: dict[str, str] = {"order_id": "o-1", "symbol": "AAPL", **inject_context()}
    assert set(fields) >= {"traceparent", "order_id"}
    parent_ctx = producer.get_span_context()
    assert sampled_traceparent(fields["traceparent"]) == (parent_ctx.trace_id, parent_ctx.span_id)

    # What XREADGROUP hands the journal worker (decode_responses=False): bytes both ways.
    entry = {k.encode(): v.encode() for k, v in fields.items()}
    ctx = extract_context(entry)
    with tracer.start_as_current_span("journal.sync", context=ctx) as consumer:
        assert consumer.get_span_context().trace_id == parent_ctx.trace_id

    (fill,) = finished("engine.fill")
    (sync,) = finished("journal.sync")
    assert ids(sync)[0] == ids(fill)[0]
    assert sync.parent is not None and sync.parent.span_id == ids(fill)[1]
    assert sync.parent.is_remote


def test_str_values_and_a_message_without_context() -> None:
    with tracer.start_as_current_span("producer") as span:
        carrier = inject_context()
    with tracer.start_as_current_span("consumer", context=extract_context(carrier)) as child:
        assert child.get_span_context().trace_id == span.get_span_context().trace_id
    # No trace fields (an entry written with tracing off): a new root trace, no error.
    with tracer.start_as_current_span("orphan", context=extract_context({b"order_id": b"x"})):
        pass
    (orphan,) = finished("orphan")
    assert orphan.parent is None
    assert ids(orphan)[0] != span.get_span_context().trace_id


def test_a_batch_consumer_links_every_message_trace() -> None:
    entries: list[dict[bytes, bytes]] = []
    for n in range(3):
        with tracer.start_as_current_span(f"fill-{n}"):
            entries.append(
                {b"fill": b"{}", **{k.encode(): v.encode() for k, v in inject_context().items()}}
            )
    entries.append({b"fill": b"{}"})  # written with tracing off: no link, no error
    with tracer.start_as_current_span("journal.batch", links=tracing.links_from(entries)):
        pass
    (batch,) = finished("journal.batch")
    producers = {ids(finished(f"fill-{n}")[0]) for n in range(3)}
    assert {(link.context.trace_id, link.context.span_id) for link in batch.links} == producers


def test_inject_outside_a_span_is_empty() -> None:
    assert inject_context() == {}


def test_spans_carry_the_service_name() -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    with tracer.start_as_current_span("x"):
        pass
    (span,) = finished("x")
    # The first module to set tracing up named the provider (once per process).
    assert span.resource is provider.resource
    assert str(span.resource.attributes["service.name"]).startswith("trader-ops")
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "trader-ops"


def test_resource_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from app import __version__

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    resource = tracing.build_resource("datahub")
    assert resource.attributes["service.name"] == "datahub"
    assert resource.attributes["service.version"] == __version__
    assert resource.attributes["deployment.environment"] == "test"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "datahub-2")
    assert tracing.build_resource("datahub").attributes["service.name"] == "datahub-2"


# -- logs -------------------------------------------------------------------------------


def test_json_logs_inside_a_span_carry_trace_and_span_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.tracing.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("before")
        with tracer.start_as_current_span("work") as span:
            logger.info("inside", extra={"order_id": "o-9"})
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    before, inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    ctx = span.get_span_context()
    assert inside["trace_id"] == f"{ctx.trace_id:032x}"
    assert inside["span_id"] == f"{ctx.span_id:016x}"
    assert inside["order_id"] == "o-9" and inside["message"] == "inside"
    assert "trace_id" not in before and "trace_id" not in after


# -- set-up -----------------------------------------------------------------------------


def test_setup_is_idempotent() -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    setup_tracing("trader-ops-tests", span_processor=PROCESSOR)
    setup_tracing("something-else")
    assert trace.get_tracer_provider() is provider
    with tracer.start_as_current_span("once"):
        pass
    assert len(finished("once")) == 1  # the processor was not added twice


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_SDK_DISABLED": "false"}, True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_TRACES_EXPORTER": "none"},
            False,
        ),
    ],
)
def test_exporter_only_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool
) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.tracing_enabled() is enabled
    exporter = tracing.otlp_exporter()
    if enabled:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert isinstance(exporter, OTLPSpanExporter)
    else:
        assert exporter is None


# -- instrumentation --------------------------------------------------------------------


async def test_fastapi_requests_are_traced_except_probes_and_metrics() -> None:
    app = FastAPI()

    @app.get("/api/v1/thing")
    async def thing() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/metrics")
    async def metrics() -> str:
        return ""

    @app.get("/health")
    async def health() -> str:
        return ""

    @app.get("/ready")
    async def ready() -> str:
        return ""

    instrument_app(app)
    instrument_app(app)  # idempotent
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        assert (await client.get("/api/v1/thing", headers={"traceparent": upstream})).is_success
        for path in ("/metrics", "/health", "/ready", "/metrics?x=1"):
            assert (await client.get(path)).is_success
    servers = [s for s in finished() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /api/v1/thing"]
    assert f"{ids(servers[0])[0]:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert all("/metrics" not in s.name and "/health" not in s.name for s in finished())
    assert finished() == servers  # no per-message "http send/receive" spans


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A tiny aiohttp server that records the traceparent header it receives."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return web.json_response({"ok": True})

    server = web.Application()
    server.router.add_get("/echo", handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/echo", seen
    finally:
        await runner.cleanup()


async def test_aiohttp_client_spans_propagate_the_trace(
    echo_server: tuple[str, list[str]],
) -> None:
    url, seen = echo_server
    with tracer.start_as_current_span("kairos.post") as parent:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
    (client,) = [s for s in finished() if s.kind is SpanKind.CLIENT]
    trace_id = parent.get_span_context().trace_id
    assert ids(client)[0] == trace_id
    assert [sampled_traceparent(header) for header in seen] == [(trace_id, ids(client)[1])]


async def test_redis_commands_make_sanitised_client_spans() -> None:
    client = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", retry=Retry(NoBackoff(), 0), socket_timeout=1
    )
    try:
        with (
            tracer.start_as_current_span("engine.claim") as parent,
            pytest.raises(RedisConnectionError),
        ):
            await client.set("traderops:alert:secret-ish", "value-not-in-the-span")
    finally:
        await client.aclose()
    redis_spans = [s for s in finished() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in redis_spans] == ["SET"]
    (span,) = redis_spans
    assert ids(span)[0] == parent.get_span_context().trace_id
    assert span.status.status_code is StatusCode.ERROR
    attributes = " ".join(str(v) for v in (span.attributes or {}).values())
    assert "value-not-in-the-span" not in attributes and "secret-ish" not in attributes


# -- export over OTLP/HTTP (a fresh process: the global provider is set once) -----------

EXPORT_SCRIPT = """
from opentelemetry import trace
from app.observability.tracing import setup_tracing, tracer, tracing_active
setup_tracing("datahub")
setup_tracing("datahub")
print("active" if tracing_active() else "off")
with tracer.start_as_current_span("hello-otlp"):
    pass
provider = trace.get_tracer_provider()
if hasattr(provider, "force_flush"):
    provider.force_flush()
"""


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A stand-in OTLP/HTTP collector on loopback, recording (path, content type, body)."""
    received: list[tuple[str, str, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((request.path, request.content_type, await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    server = web.Application()
    server.router.add_post("/v1/traces", handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


async def run_export_script(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXPORT_SCRIPT,
        env={**clean, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **env},
        cwd=str(Path(__file__).resolve().parents[2]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    url, received = collector
    assert await run_export_script({"OTEL_EXPORTER_OTLP_ENDPOINT": url}) == "active"
    assert len(received) == 1  # one batch: the exporter was not added twice
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"hello-otlp" in body and b"datahub" in body


async def test_nothing_is_installed_without_an_endpoint_or_when_disabled(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    url, received = collector
    assert await run_export_script({}) == "off"
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SDK_DISABLED": "true"}
    assert await run_export_script(disabled) == "off"
    assert received == []
