"""OpenTelemetry across the broker: a client call's CLIENT span and the SERVER span around the
remote function share one trace, on thread, process and async workers; the spans are collected
with the SDK's in-memory exporter on both sides."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sdk_fixtures import wait_until

import prpc

# The server records its spans in memory too and a function reports what it sees: its trace id,
# its span's kind and its parent's span id.
APP = '''
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prpc import AppServer

trace.set_tracer_provider(TracerProvider())
app = AppServer("redis", "{URL}", "thread", 2, None, "{QUEUE}")


def seen():
    span = trace.get_current_span()
    context = span.get_span_context()
    parent = getattr(span, "parent", None)
    return {"trace_id": format(context.trace_id, "032x"),
            "kind": getattr(getattr(span, "kind", None), "name", None),
            "parent": format(parent.span_id, "016x") if parent else None}


@app.decorator_reg_func("thread")
def on_thread():
    return seen()


@app.decorator_reg_func("async")
async def on_async():
    await asyncio.sleep(0)
    return seen()


@app.decorator_reg_func("process")
def on_process():
    return seen()


if __name__ == "__main__":
    app.start()
'''

exporter = InMemorySpanExporter()


def finished_span(name: str):
    """The finished span `name`: a call's span ends on the thread that received the reply,
    which may be a moment after result() returned."""
    def find():
        return next((s for s in exporter.get_finished_spans() if s.name == name), None)
    return wait_until(find, 10, f"the span {name!r} to end")


@pytest.fixture(scope="module", autouse=True)
def tracer_provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield provider


@pytest.mark.parametrize("function", ["on_thread", "on_process", "on_async"])
def test_the_trace_continues_into_the_remote_function(start_app, client, function):
    start_app(APP)
    exporter.clear()
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        seen = client.call(function).result(30)
    trace_id = format(caller.get_span_context().trace_id, "032x")
    assert seen["trace_id"] == trace_id
    assert seen["kind"] == "SERVER"
    call_span = finished_span(function)
    assert call_span.kind == SpanKind.CLIENT
    assert call_span.context.trace_id == caller.get_span_context().trace_id
    assert call_span.parent.span_id == caller.get_span_context().span_id
    # The server's span is the client span's child.
    assert seen["parent"] == format(call_span.context.span_id, "016x")
    assert call_span.attributes["rpc.method"] == function


def test_a_failed_call_marks_its_span(start_app, client):
    start_app(APP)
    exporter.clear()
    with pytest.raises(prpc.RemoteError):
        client.call("nope").result(30)
    assert not finished_span("nope").status.is_ok


def test_without_a_recording_span_nothing_is_sent(start_app, client, redis_server, queue):
    """A call outside any trace still gets its own CLIENT span (the SDK records it); with the
    API alone (no SDK) a call carries no context: checked through prpc._tracing directly."""
    start_app(APP)
    from prpc import _tracing

    trace_api_only = trace.NoOpTracerProvider().get_tracer("x")
    saved = _tracing._tracer
    _tracing._tracer = trace_api_only
    try:
        assert _tracing.start_client_span("f", queue) is None
    finally:
        _tracing._tracer = saved
    assert client.call("on_thread").result(30)["kind"] == "SERVER"
