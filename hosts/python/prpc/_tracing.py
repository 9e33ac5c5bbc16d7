"""OpenTelemetry, when the application has it (``opentelemetry-api``; PRPC does not depend on
it). A client call runs in a CLIENT span whose W3C context (``traceparent``, ``tracestate``)
travels with the request; the server runs the function inside a SERVER span that is its child,
on thread, process and async workers alike, so ``trace.get_current_span()`` inside a remote
function has the caller's trace id. Without the package, or with the API but no SDK configured
(spans that record nothing), calls carry no context and cost one check
(docs/observability.md)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the optional dependency is absent: nothing is traced
    available = False
else:
    available = True
    # A proxy until the application sets a tracer provider, then that provider's tracer.
    _tracer = trace.get_tracer("prpc")

__all__ = ["available", "start_client_span", "call_in_span"]

def start_client_span(func_name: str, queue: str) -> tuple[Any, str, str] | None:
    """Starts the span of a call and returns (span, traceparent, tracestate), or None when
    nothing records it and the context is not worth sending."""
    parent = trace.get_current_span()
    span = _tracer.start_span(
        func_name, kind=SpanKind.CLIENT,
        attributes={"rpc.system": "prpc", "rpc.method": func_name,
                    "messaging.destination.name": queue})
    if not span.is_recording() and not parent.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    traceparent = carrier.get("traceparent", "")
    if not traceparent:
        span.end()
        return None
    return span, traceparent, carrier.get("tracestate", "")


def end_client_span(span: Any, handle: Any) -> None:
    """Ends a call's span when its reply came (on the receiving thread)."""
    kind = handle.kind()
    if kind != "ok":
        span.set_status(Status(StatusCode.ERROR, "the function failed" if kind == "remote"
                               else kind))
    span.end()


def _server_span(name: str, traceparent: str, tracestate: str) -> Any:
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _tracer.start_as_current_span(
        name, context=propagate.extract(carrier), kind=SpanKind.SERVER,
        attributes={"rpc.system": "prpc", "rpc.method": name})


async def _traced(coro: Coroutine[Any, Any, Any], name: str, traceparent: str,
                  tracestate: str) -> Any:
    with _server_span(name, traceparent, tracestate):
        return await coro


def call_in_span(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 name: str, traceparent: str, tracestate: str, coroutine: bool) -> Any:
    """What the server runs for a request with a traceparent: fn(*args, **kwargs) inside a
    SERVER span continuing the caller's trace (for a coroutine function, a coroutine that
    enters the span on the event loop)."""
    if coroutine:
        return _traced(fn(*args, **kwargs), name, traceparent, tracestate)
    with _server_span(name, traceparent, tracestate):
        return fn(*args, **kwargs)


def tracer_hook() -> Callable[..., Any] | None:
    """What FunctionTable.set_tracer takes: call_in_span, or None without OpenTelemetry."""
    return call_in_span if available else None
