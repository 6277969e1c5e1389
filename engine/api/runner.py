"""Running the service: ``serve`` starts uvicorn's worker processes, each building its app with
``engine.api.app.app_from_env``; ``HeaderTimeoutProtocol`` cuts off clients that trickle their headers."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from engine.api.settings import KEEP_ALIVE_TIMEOUT, LIMIT_CONCURRENCY, Settings, load_api_keys
from engine.store import DEFAULT_STORE, open_store

__all__ = ["HeaderTimeoutProtocol", "serve"]


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config plus the ``casecheck`` loggers, so the open-service warning is shown."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["casecheck"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def _cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers do not arrive within the
    client timeout: uvicorn times out only idle keep-alive connections, so a client trickling its headers
    byte by byte would otherwise hold its connection for as long as it likes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        timeout = Settings.from_env().client_timeout
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._disarm_header_timer()
            self._arm_header_timer()  # the next request's headers, once bytes of it arrive or not

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    store: str = DEFAULT_STORE,
    api_keys: Path | None = None,
    workers: int | None = None,
    *,
    max_body: int | None = None,
    max_batch_body: int | None = None,
    log_level: str = "info",
    access_log: bool = False,
    client_timeout: float | None = None,
    packs: Sequence[str] | None = None,
    overlay: str | None = None,
    webhooks: Sequence[str] = (),
) -> None:
    """Run the service under uvicorn with ``workers`` processes (default: one per CPU).

    Keys and store are opened once here first, so that a bad key file or an unreachable database stops
    the start-up with one clear error instead of one per worker. The access log is off by default: the
    verdict log already records every check, and the access log costs a noticeable share of a request.
    """
    import uvicorn

    env = Settings.from_env()
    settings = Settings(
        store=store,
        api_keys=Path(api_keys).resolve() if api_keys else None,
        max_body=max_body if max_body is not None else env.max_body,
        max_batch_body=max_batch_body if max_batch_body is not None else env.max_batch_body,
        client_timeout=client_timeout if client_timeout is not None else env.client_timeout,
        packs=tuple(str(Path(p).resolve()) if Path(p).is_dir() else p for p in packs or env.packs),
        # A path is made absolute: workers look it up on their own.
        overlay=str(Path(overlay).resolve()) if overlay and overlay.endswith(".toml") else overlay,
        webhooks=tuple(webhooks) or env.webhooks,
    )
    if settings.api_keys:
        load_api_keys(settings.api_keys)
    open_store(settings.store).close()  # creates the schema before workers race to
    os.environ.update(settings.to_env())
    count = workers or _cpu_count()
    uvicorn.run(
        "engine.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=count,
        log_level=log_level,
        log_config=_log_config(log_level),
        access_log=access_log,
        server_header=False,
        http=HeaderTimeoutProtocol,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=LIMIT_CONCURRENCY,
    )
