"""OpenTelemetry tracing: one SDK TracerProvider per process, exported over OTLP/HTTP.

Tracing is on only when there is somewhere to send spans: the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and
``OTEL_SDK_DISABLED`` is not true (``OTEL_TRACES_EXPORTER=none`` also turns it off).
Otherwise nothing is installed: no provider, no instrumentation, and every span the
code starts is the API's no-op span (near-zero cost). Tests pass their own span
processor (an in-memory exporter) instead of an endpoint.

When on: Redis commands (``redis`` and ``redis.asyncio``; statements are sanitised to
``COMMAND ? ?`` by the instrumentation), aiohttp client requests (which also carry the
W3C ``traceparent`` header to the server) and, through :func:`instrument_app`, FastAPI
requests except ``/metrics``, ``/health`` and ``/ready``.

Across Redis streams the context travels in the entry itself: the producer adds
``inject_context()`` to the fields (a ``traceparent`` field, plus ``tracestate`` when
there is one), the consumer starts its span with ``context=extract_context(fields)``.
Every function here is safe to call more than once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.context import Context

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "EXCLUDED_URLS",
    "TRACEPARENT",
    "build_resource",
    "extract_context",
    "get_tracer",
    "inject_context",
    "instrument_app",
    "links_from",
    "setup_tracing",
    "tracer",
    "tracing_active",
    "tracing_enabled",
]

log = logging.getLogger(__name__)

TRACER_NAME = "trader-ops"
TRACEPARENT = "traceparent"
# Regexes searched in the full request URL: scrapes and probes make no spans.
EXCLUDED_URLS = r"/metrics(\?|$),/health(\?|$),/ready(\?|$)"

# A proxy: it follows whatever provider setup_tracing() installs, even later.
tracer: trace.Tracer = trace.get_tracer(TRACER_NAME)

_lock = threading.Lock()
_provider: TracerProvider | None = None
_processors: list[SpanProcessor] = []
_exporting = False
_foreign_provider = False
_libraries_instrumented = False


def get_tracer(name: str = TRACER_NAME) -> trace.Tracer:
    """A tracer for ``name`` (module-level ``tracer`` is the one for trader-ops)."""
    return trace.get_tracer(name)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for span export over OTLP."""
    env = os.environ if environ is None else environ
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    if (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower() == "none":
        return False
    return bool(
        (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "").strip()
        or (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
    )


def tracing_active() -> bool:
    """True once setup_tracing() has installed a provider in this process."""
    return _provider is not None


def otlp_exporter() -> SpanExporter | None:
    """The OTLP/HTTP exporter the environment asks for, or None (tracing off)."""
    if not tracing_enabled():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT, ... itself.
    return OTLPSpanExporter()


def setup_tracing(
    service_name: str,
    *,
    span_processor: SpanProcessor | None = None,
    instrument_libraries: bool = True,
) -> None:
    """Install the tracer provider for this process (once), when there is an exporter.

    ``span_processor`` is for tests (e.g. ``SimpleSpanProcessor(InMemorySpanExporter())``):
    it turns tracing on without an OTLP endpoint. Calling again adds a new processor
    to the same provider; the OTLP exporter and the instrumentation are added once.
    """
    global _provider, _exporting
    with _lock:
        exporter = None if _exporting else otlp_exporter()
        if exporter is None and span_processor is None and _provider is None:
            log.debug("tracing off: no OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_SDK_DISABLED)")
            return
        provider = _provider or _install_provider(service_name)
        if exporter is not None and _foreign_provider:
            exporter = None  # its owner (e.g. `opentelemetry-instrument`) exports already
        if exporter is not None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            _add_processor(provider, BatchSpanProcessor(exporter))
            _exporting = True
            log.info("tracing on: exporting spans over OTLP/HTTP", extra={"service": service_name})
        if span_processor is not None:
            _add_processor(provider, span_processor)
        if instrument_libraries:
            _instrument_libraries(provider)


def build_resource(service_name: str) -> Resource:
    """service.name (``OTEL_SERVICE_NAME`` wins, e.g. datahub-2), service.version, and
    whatever ``OTEL_RESOURCE_ATTRIBUTES`` adds."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    from app import __version__

    name = (os.environ.get("OTEL_SERVICE_NAME") or "").strip() or service_name
    return Resource.create({SERVICE_NAME: name, SERVICE_VERSION: __version__})


def _install_provider(service_name: str) -> TracerProvider:
    global _provider, _foreign_provider
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Someone (e.g. `opentelemetry-instrument`) installed an SDK provider first:
        # the global provider can be set once per process, so use that one.
        _provider = current
        _foreign_provider = True
        return current
    provider = TracerProvider(resource=build_resource(service_name))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _add_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    if any(p is processor for p in _processors):
        return
    provider.add_span_processor(processor)
    _processors.append(processor)


def _instrument_libraries(provider: TracerProvider) -> None:
    global _libraries_instrumented
    if _libraries_instrumented:
        return
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    redis_instrumentor = RedisInstrumentor()
    if not redis_instrumentor.is_instrumented_by_opentelemetry:
        redis_instrumentor.instrument(tracer_provider=provider)
    aiohttp_instrumentor = AioHttpClientInstrumentor()
    if not aiohttp_instrumentor.is_instrumented_by_opentelemetry:
        aiohttp_instrumentor.instrument(tracer_provider=provider)
    _libraries_instrumented = True


def instrument_app(app: FastAPI) -> None:
    """Trace the app's requests (not /metrics, /health, /ready); no-op when tracing is off.

    Call it in the app factory, before the app serves, after setup_tracing().
    """
    if _provider is None or getattr(app, "_is_instrumented_by_opentelemetry", False):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=EXCLUDED_URLS,
        # No span per ASGI message: the WebSocket stream would make one per frame.
        exclude_spans=["receive", "send"],
    )


def inject_context(context: Context | None = None) -> dict[str, str]:
    """The current trace context as message fields (``traceparent``[, ``tracestate``]).

    Empty when there is no active, valid span (tracing off): add it to a Redis stream
    entry as is, e.g. ``fields.update(inject_context())``.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_context(
    carrier: Mapping[str, str | bytes] | Mapping[bytes, str | bytes],
) -> Context:
    """The trace context carried by a message (str or bytes keys/values, as Redis gives).

    Start the consumer's span with ``tracer.start_as_current_span(name, context=ctx)``;
    a message without trace fields yields an empty context (the span starts a new trace).
    """
    wanted = propagate.get_global_textmap().fields or {TRACEPARENT, "tracestate"}
    fields: dict[str, str] = {}
    for key, value in carrier.items():
        name = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        if name.lower() not in wanted:
            continue
        fields[name.lower()] = (
            value.decode("ascii", "replace") if isinstance(value, bytes) else value
        )
    return propagate.extract(fields)


def links_from(
    carriers: Iterable[Mapping[str, str | bytes] | Mapping[bytes, str | bytes]],
) -> list[trace.Link]:
    """Span links to the traces of a batch of messages (e.g. the journal's fills).

    A batch has many parents: start its span with ``links=links_from(fields_list)``
    (messages without trace fields are skipped).
    """
    links: list[trace.Link] = []
    for carrier in carriers:
        span_context = trace.get_current_span(extract_context(carrier)).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links
