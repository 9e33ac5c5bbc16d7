"""Function signatures as the manifest (get_function_server) describes them."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["spec_of", "spec_json"]


def _annotation_text(annotation: Any) -> str:
    """Annotation source text with module prefixes kept (typing.Optional[int], datetime.date),
    so a generated stub can import what its annotations name."""
    if isinstance(annotation, str):
        return annotation
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not hasattr(annotation, "__origin__"):
        if annotation.__module__ == "builtins":
            return annotation.__qualname__
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation).replace("NoneType", "None")


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether a default is plain JSON (the original PRPC's function list carries its value)."""
    if depth > 20:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def spec_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of `fn` with their kinds, defaults (source text, and the value itself
    when it is plain JSON) and annotations (text)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature
        return {"parameters": [
            {"name": "args", "kind": "VAR_POSITIONAL"},
            {"name": "kwargs", "kind": "VAR_KEYWORD"},
        ]}
    params = []
    for p in sig.parameters.values():
        item: dict[str, Any] = {"name": p.name, "kind": p.kind.name}
        if p.annotation is not inspect.Parameter.empty:
            item["annotation"] = _annotation_text(p.annotation)
        if p.default is not inspect.Parameter.empty:
            item["default"] = repr(p.default)
            if _plain(p.default):
                item["value"] = p.default
        params.append(item)
    spec: dict[str, Any] = {"parameters": params}
    if sig.return_annotation is not inspect.Signature.empty:
        spec["return_annotation"] = _annotation_text(sig.return_annotation)
    return spec


def spec_json(fn: Callable[..., Any]) -> str:
    return json.dumps(spec_of(fn))
