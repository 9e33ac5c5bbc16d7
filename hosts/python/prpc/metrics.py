"""The client side's Prometheus metrics, for a Python process that asks for them.

``prpc.serve_client_metrics("127.0.0.1:9465")`` starts counting every call this process makes
through a ``prpc.Client`` (or the shared client) and serves ``/metrics`` in the Prometheus text
format from one background thread; ``client_metrics_text()`` returns the same text (to add it to
an application's own endpoint). Until one of them is called nothing is counted and calls cost
nothing extra. Servers export their own metrics (``metrics.listen``; docs/observability.md).

Series: ``prpc_client_calls_total{queue,function}`` (requests sent),
``prpc_client_replies_total{queue,function,outcome}`` (outcome: ok, error — the function
failed —, timeout — the call's own timeout passed — or the failing status, e.g. Unavailable),
``prpc_client_timeouts_total{queue,function}`` (waits that gave up: ClientTimeOutError) and the
histogram ``prpc_client_call_seconds{queue,function}`` of round trips.
"""

from __future__ import annotations

import bisect
import http.server
import threading
from typing import Any

__all__ = ["serve_client_metrics", "client_metrics_text"]

# Upper bounds in seconds, the servers' own (core/src/metrics.hpp).
BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

enabled = False  # read on every call: False until serve_client_metrics/client_metrics_text
_lock = threading.Lock()
_calls: dict[tuple[str, str], int] = {}
_replies: dict[tuple[str, str, str], int] = {}
_timeouts: dict[tuple[str, str], int] = {}
_latency: dict[tuple[str, str], list[float]] = {}  # bucket counts (+Inf last), then the sum
_server: http.server.HTTPServer | None = None


def _outcome(kind: str) -> str:
    if kind == "ok":
        return "ok"
    if kind == "remote":
        return "error"
    return "timeout" if kind == "Timeout" else kind


def record_call(queue: str, function: str, handle: Any) -> None:
    """Counts a sent call and, when its reply comes, the outcome and the round trip."""
    key = (queue, function)
    with _lock:
        _calls[key] = _calls.get(key, 0) + 1

    def replied() -> None:  # on the thread that received the reply, with the GIL
        seconds = handle.elapsed()
        outcome = _outcome(handle.kind())
        with _lock:
            rkey = (queue, function, outcome)
            _replies[rkey] = _replies.get(rkey, 0) + 1
            buckets = _latency.setdefault(key, [0.0] * (len(BOUNDS) + 2))
            buckets[bisect.bisect_left(BOUNDS, seconds)] += 1
            buckets[-1] += seconds

    handle.add_done_callback(replied)


def record_timeout(queue: str, function: str) -> None:
    key = (queue, function)
    with _lock:
        _timeouts[key] = _timeouts.get(key, 0) + 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**pairs: str) -> str:
    return ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items())


def client_metrics_text() -> str:
    """The text format of this process's client metrics (and counting starts, if it had not)."""
    global enabled
    enabled = True
    with _lock:
        calls, replies, timeouts = dict(_calls), dict(_replies), dict(_timeouts)
        latency = {k: list(v) for k, v in _latency.items()}
    out = ["# HELP prpc_client_calls_total Requests this process sent.",
           "# TYPE prpc_client_calls_total counter"]
    out += [f"prpc_client_calls_total{{{_labels(queue=q, function=f)}}} {n}"
            for (q, f), n in sorted(calls.items())]
    out += ["# HELP prpc_client_replies_total Calls finished, by outcome.",
            "# TYPE prpc_client_replies_total counter"]
    out += [f"prpc_client_replies_total{{{_labels(queue=q, function=f, outcome=o)}}} {n}"
            for (q, f, o), n in sorted(replies.items())]
    out += ["# HELP prpc_client_timeouts_total Waits for a reply that gave up.",
            "# TYPE prpc_client_timeouts_total counter"]
    out += [f"prpc_client_timeouts_total{{{_labels(queue=q, function=f)}}} {n}"
            for (q, f), n in sorted(timeouts.items())]
    out += ["# HELP prpc_client_call_seconds Round trips, from sending to the reply.",
            "# TYPE prpc_client_call_seconds histogram"]
    for (q, f), buckets in sorted(latency.items()):
        labels = _labels(queue=q, function=f)
        cumulative = 0
        for bound, n in zip((*BOUNDS, float("inf")), buckets[:-1], strict=True):
            cumulative += int(n)
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'prpc_client_call_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
        out.append(f"prpc_client_call_seconds_sum{{{labels}}} {buckets[-1]!r}")
        out.append(f"prpc_client_call_seconds_count{{{labels}}} {cumulative}")
    return "\n".join(out) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = client_metrics_text().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are not worth a log line


def serve_client_metrics(listen: str) -> int:
    """Counts this process's calls and serves them at http://``listen``/metrics (``host:port``;
    port 0 picks a free one) from one daemon thread. Returns the port. Once per process."""
    global _server, enabled
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen must be 'host:port', not {listen!r}")
    with _lock:
        if _server is not None:
            raise RuntimeError("serve_client_metrics was already called in this process")
        _server = http.server.HTTPServer((host.strip("[]") or "0.0.0.0", int(port)), _Handler)
    enabled = True
    threading.Thread(target=_server.serve_forever, name="prpc-client-metrics",
                     daemon=True).start()
    return int(_server.server_address[1])
