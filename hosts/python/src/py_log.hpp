// PRPC's log lines in a Python process: the core's sink puts them in a bounded queue without
// touching Python, and a Python thread (prpc._logging) takes them in batches and hands them to
// `logging` (docs/observability.md).
#pragma once

#include <pybind11/pybind11.h>

namespace prpc::python {

namespace pyb = pybind11;

// Sends every log line to the queue (true) or back to stderr (false).
void route_logs(bool on);
// Waits up to `timeout_s` (GIL released) for lines, then returns them all as a list of
// (level, component, message, unix time) tuples; `level` is Python's (logging.WARNING, ...).
// A line saying how many were dropped comes first when the queue overflowed.
pyb::list take_log_lines(double timeout_s);

}  // namespace prpc::python
