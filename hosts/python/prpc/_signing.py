"""The signing keywords of AppServer and Client, as configuration keys (docs/security.md)."""

from __future__ import annotations

from collections.abc import Sequence

from .exceptions import ConfigurationError


def _key(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty str")
    if any(ord(c) < 0x20 for c in value):
        raise ConfigurationError(f"{what} must not contain control characters")
    return value


def signing_options(signing_key: str | None,
                    previous_signing_keys: Sequence[str]) -> dict[str, str]:
    """security.signing_key and security.previous_keys (in the list form the configuration
    reads); nothing when no key is given, so PRPC_SIGNING_KEY still applies."""
    if isinstance(previous_signing_keys, str):
        raise ConfigurationError("previous_signing_keys must be a list of keys, not one str")
    previous = [_key(k, "each of previous_signing_keys") for k in previous_signing_keys]
    out: dict[str, str] = {}
    if signing_key is not None:
        out["security.signing_key"] = _key(signing_key, "signing_key")
    if previous:
        quoted = ('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in previous)
        out["security.previous_keys"] = "[" + ",".join(quoted) + "]"
    return out
