"""What configures the service: its settings, the ``CASECHECK_*`` variables that carry them to uvicorn's
worker processes, its limits, and the API keys file.

Configuration travels in the environment because with several workers uvicorn imports the app by name
in each process (``engine.api.app.app_from_env``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.store import DEFAULT_STORE

__all__ = [
    "AUDITOR",
    "DEFAULT_CLIENT_TIMEOUT",
    "DEFAULT_MAX_BATCH_BODY",
    "DEFAULT_MAX_BODY",
    "ENV_API_KEYS",
    "ENV_CLIENT_TIMEOUT",
    "ENV_MAX_BATCH_BODY",
    "ENV_MAX_BODY",
    "ENV_OVERLAY",
    "ENV_PACKS",
    "ENV_STORE",
    "ENV_WEBHOOKS",
    "KEEP_ALIVE_TIMEOUT",
    "LIMIT_CONCURRENCY",
    "MAX_BATCH_CASES",
    "KeyHolder",
    "MiB",
    "Settings",
    "load_api_keys",
]

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 8 * MiB
DEFAULT_MAX_BATCH_BODY = 64 * MiB
MAX_BATCH_CASES = 10_000

ENV_STORE = "CASECHECK_STORE"
ENV_API_KEYS = "CASECHECK_API_KEYS"
ENV_MAX_BODY = "CASECHECK_MAX_BODY"
ENV_MAX_BATCH_BODY = "CASECHECK_MAX_BATCH_BODY"
ENV_CLIENT_TIMEOUT = "CASECHECK_CLIENT_TIMEOUT"
ENV_PACKS = "CASECHECK_PACKS"  # comma-separated pack names or folders
ENV_OVERLAY = "CASECHECK_OVERLAY"
ENV_WEBHOOKS = "CASECHECK_WEBHOOKS"  # space-separated URLs
# Seconds a client has to send a request's headers, and then its body: past them the connection is closed
# (headers) or answered 408 (body), so slow clients cannot hold connections for ever (slowloris).
DEFAULT_CLIENT_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open
# Connections (and requests in flight) per worker; past them uvicorn answers 503 at once.
LIMIT_CONCURRENCY = 1000


@dataclass(frozen=True)
class Settings:
    """Everything a worker process needs to build the app; round-trips through the environment."""

    store: str = DEFAULT_STORE
    api_keys: Path | None = None
    max_body: int = DEFAULT_MAX_BODY
    max_batch_body: int = DEFAULT_MAX_BATCH_BODY
    max_batch_cases: int = MAX_BATCH_CASES
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT
    packs: tuple[str, ...] = ("ningbo-2020",)
    overlay: str | None = None
    webhooks: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        keys = env.get(ENV_API_KEYS) or None
        return cls(
            store=env.get(ENV_STORE) or DEFAULT_STORE,
            api_keys=Path(keys) if keys else None,
            max_body=int(env.get(ENV_MAX_BODY) or DEFAULT_MAX_BODY),
            max_batch_body=int(env.get(ENV_MAX_BATCH_BODY) or DEFAULT_MAX_BATCH_BODY),
            client_timeout=float(env.get(ENV_CLIENT_TIMEOUT) or DEFAULT_CLIENT_TIMEOUT),
            packs=tuple(filter(None, (env.get(ENV_PACKS) or "").split(","))) or cls.packs,
            overlay=env.get(ENV_OVERLAY) or None,
            webhooks=tuple((env.get(ENV_WEBHOOKS) or "").split()),
        )

    def to_env(self) -> dict[str, str]:
        return {
            ENV_STORE: self.store,
            ENV_API_KEYS: str(self.api_keys) if self.api_keys else "",
            ENV_MAX_BODY: str(self.max_body),
            ENV_MAX_BATCH_BODY: str(self.max_batch_body),
            ENV_CLIENT_TIMEOUT: str(self.client_timeout),
            ENV_PACKS: ",".join(self.packs),
            ENV_OVERLAY: self.overlay or "",
            ENV_WEBHOOKS: " ".join(self.webhooks),
        }


@dataclass(frozen=True)
class KeyHolder:
    """Who a key belongs to: a caller sees its own logged checks, an auditor every caller's."""

    name: str
    auditor: bool = False


AUDITOR = "auditor"  # the role word after a key in the keys file


def load_api_keys(path: Path) -> dict[str, KeyHolder]:
    """``name:key`` per line, optionally followed by `` auditor`` (blank lines and ``#`` comments ignored)
    → {key: holder}.

    A malformed line stops the start-up with its line number: a key silently dropped would lock a
    caller out, and a typo silently accepted could let one in.
    """
    keys: dict[str, KeyHolder] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, *roles = line.split()
        name, sep, key = entry.partition(":")
        if not sep or not name or not key or roles not in ([], [AUDITOR]):
            raise ValueError(f"{path}:{number}: expected name:key, optionally followed by {AUDITOR!r}")
        if key in keys:
            raise ValueError(f"{path}:{number}: key of {name!r} is already used by {keys[key].name!r}")
        keys[key] = KeyHolder(name, auditor=bool(roles))
    if not keys:
        raise ValueError(f"{path}: no API keys (one name:key per line)")
    return keys
