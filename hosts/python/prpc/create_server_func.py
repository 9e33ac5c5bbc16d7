"""Writes server_func.py: one function per function of a PRPC server, with its exact signature.

    python -m prpc.create_server_func [--output PATH] [--queue NAME] [--timeout SECONDS]

The server is found through PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME; it answers
with its manifest (the reserved function get_function_server). Calling a generated function
sends the call and returns a prpc.AwaitableTask.

The file is written to ./server_func.py (import it as `server_func`) and a copy is kept for the
queue (see prpc._stubs.stubs_path), which `from prpc.server_func import ...` loads, as the
original PRPC's clients import their functions.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import keyword
import os
import re
import sys
from typing import Any

from ._stubs import stubs_path
from .client import Client
from .exceptions import PRPCError

__all__ = ["generate", "main"]

_DOTTED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_BUILTIN_KINDS = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD", "VAR_POSITIONAL", "KEYWORD_ONLY",
                  "VAR_KEYWORD")


def _default_text(text: str) -> str:
    try:
        ast.literal_eval(text)
        return text
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return f"_RemoteDefault({text!r})"


def _annotation(text: str | None) -> str:
    if not text:
        return ""
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return ": " + repr(text)  # kept as a string annotation
    return ": " + text


def _modules_named(annotations: list[str]) -> list[str]:
    """Top-level modules the annotations refer to that can be imported here."""
    found = set()
    for text in annotations:
        for match in _DOTTED.finditer(text):
            module = match.group(1)
            if module in found or module == "builtins":
                continue
            try:
                if importlib.util.find_spec(module) is not None:
                    found.add(module)
            except (ImportError, ValueError):
                pass
    return sorted(found)


def _signature(spec: dict[str, Any]) -> tuple[str, list[str]]:
    parts: list[str] = []
    annotations: list[str] = []
    params = [p for p in spec.get("parameters", []) if p.get("kind") in _BUILTIN_KINDS]
    saw_star = any(p["kind"] == "VAR_POSITIONAL" for p in params)
    last_positional_only = max(
        (i for i, p in enumerate(params) if p["kind"] == "POSITIONAL_ONLY"), default=-1
    )
    star_written = False
    for i, p in enumerate(params):
        name = p["name"]
        kind = p["kind"]
        if kind == "KEYWORD_ONLY" and not saw_star and not star_written:
            parts.append("*")
            star_written = True
        annotation = p.get("annotation")
        if annotation:
            annotations.append(annotation)
        prefix = "*" if kind == "VAR_POSITIONAL" else "**" if kind == "VAR_KEYWORD" else ""
        text = prefix + name + _annotation(annotation)
        if "default" in p:
            text += (" = " if annotation else "=") + _default_text(p["default"])
        parts.append(text)
        if i == last_positional_only:
            parts.append("/")
    returns = spec.get("return_annotation")
    if returns:
        annotations.append(returns)
    return ", ".join(parts), annotations


def generate(manifest: dict[str, Any], queue: str, source: str) -> str:
    """The text of server_func.py for a server's manifest."""
    functions = list(manifest.get("functions", []))
    if not any(f.get("name") == "ping" for f in functions):
        # Every server answers it; the original's generated files had it first.
        functions.insert(0, {"name": "ping", "worker": "reserved", "spec": {"parameters": []},
                             "doc": 'Answers "pong".'})
    bodies = []
    all_annotations: list[str] = []
    skipped = []
    for f in functions:
        name = f.get("name", "")
        if not name.isidentifier() or keyword.iskeyword(name):
            skipped.append(name)
            continue
        params, annotations = _signature(f.get("spec") or {})
        all_annotations += annotations
        doc = (f.get("doc") or "").strip()
        worker = f.get("worker", "")
        lines = [f"@_remote(_QUEUE, {name!r})", f"def {name}({params}) -> AwaitableTask:"]
        docstring = (doc + "\n\n" if doc else "") + (
            "Answered by the server itself." if worker == "reserved"
            else f"Runs on the server's {worker} workers.")
        lines.append('    """' + docstring.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
                     .replace("\n", "\n    ") + '"""')
        bodies.append("\n".join(lines))
    imports = [f"import {m}" for m in _modules_named(all_annotations)]
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    header = [
        f'"""The functions of the PRPC server on queue {queue!r}.',
        "",
        f"Generated by `python -m prpc.create_server_func` from {source} at {stamp}.",
        "Each function sends the call and returns a prpc.AwaitableTask: use",
        "task.sync_wait_result_task(timeout), `await task` or task.result(timeout).",
        "Only the arguments you pass are sent; the server applies its own defaults.",
        "Regenerate this file when the server's functions change.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        *([""] if imports else []),
        "from prpc import AwaitableTask",
        "from prpc._stubs import RemoteDefault as _RemoteDefault",
        "from prpc._stubs import remote_function as _remote",
        "",
        f"_QUEUE = {queue!r}",
        f"__all__ = {[f['name'] for f in functions if f.get('name') not in skipped]!r}",
    ]
    if skipped:
        header.append(f"# Not valid Python names, call them with prpc.call(): {skipped!r}")
    return "\n".join(header) + "\n\n\n" + "\n\n\n".join(bodies) + "\n"


def _write(path: str, text: str) -> None:
    """Replaces the file at once, so a process importing it never reads half of it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prpc.create_server_func",
        description="Write server_func.py with the functions of a PRPC server.",
    )
    parser.add_argument("--output", "-o", default="server_func.py",
                        help="where to write (default: ./server_func.py)")
    parser.add_argument("--queue", help="the queue (default: $PRPC_QUEUE_NAME or task_prpc)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server (default 10)")
    args = parser.parse_args(argv)
    try:
        client = Client(queue_name=args.queue)
        manifest = client.get_function_server(timeout=args.timeout)
    except PRPCError as e:
        print(f"create_server_func: {e}", file=sys.stderr)
        return 1
    source = f"{client.type_broker} {client.broker_url}"
    text = generate(manifest, client.queue_name, source)
    output = os.path.abspath(args.output)
    _write(output, text)
    names = [f["name"] for f in manifest.get("functions", [])]
    print(f"wrote {output}: {len(names)} functions ({', '.join(names)})")
    kept = stubs_path(client.queue_name)
    try:
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        _write(kept, text)
    except OSError as e:
        print(f"create_server_func: prpc.server_func will not find these stubs ({e})",
              file=sys.stderr)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
