"""The app for one worker process: ``create_app`` builds it from settings, ``app_from_env`` from the
``CASECHECK_*`` variables (the factory uvicorn's workers call)."""

from __future__ import annotations

import copy
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi

from engine.api.errors import EXCEPTION_HANDLERS, ApiError
from engine.api.routes import Caller, meta, read_limited, router
from engine.api.service import Service
from engine.api.settings import Settings
from engine.cases import case_adapter
from engine.watch import Watcher, WatchStore
from engine.watch_api import add_watch_routes, sweep_watch
from engine.webhooks import WebhookSender

__all__ = ["GC_YOUNG_THRESHOLD", "app_from_env", "create_app"]

log = logging.getLogger("casecheck.api")

# Young-generation size for the service's collector (CPython's default is 700 allocations).
GC_YOUNG_THRESHOLD = 50_000


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for one process: loads both engines, opens the store, reads the keys."""
    settings = settings or Settings.from_env()
    service = Service.load(settings)
    if service.keys is None:
        log.warning(
            "no API keys configured: the service is open to anyone who can reach it "
            "(pass an api_keys file of name:key lines to require X-API-Key or Authorization: Bearer)"
        )
    watcher = Watcher(service.durable, service.columnar, WatchStore(settings.store), service.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Sweep the watch while the worker runs; close the stores when uvicorn shuts it down."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sweep_watch, watcher)
            if settings.webhooks:
                tasks.start_soon(WebhookSender(settings.webhooks, watcher.watch).run)
            yield
            tasks.cancel_scope.cancel()
        watcher.watch.close()
        service.store.close()

    app = FastAPI(
        title="casecheck",
        version="0.1.0",
        description=(
            "Checks case records against the service standards of 甬政办发〔2020〕36号. "
            "Every answered check is logged (case_id, SHA-256 of the case's canonical JSON, verdict, "
            "per-rule statuses, ruleset and calendar versions, caller, time)."
        ),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.service = service
    app.state.watcher = watcher

    def read_body(request: Request, many: bool) -> Awaitable[bytes]:
        return read_limited(request, settings.max_batch_body if many else settings.max_body)

    # The routers' routes are taken over as they are: ``include_router`` would put a layer of FastAPI's in
    # front of them that every request walks through. Their order is the OpenAPI document's.
    app.router.routes.extend(router.routes)
    add_watch_routes(app, watcher, read_body, ApiError, Caller, settings.max_batch_cases)
    app.router.routes.extend(meta.routes)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the case record schema (with its $defs moved to components)."""
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        case_schema = copy.deepcopy(case_adapter.json_schema(ref_template="#/components/schemas/{model}"))
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in case_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["CaseRecord"] = case_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory used by ``serve``: settings from ``CASECHECK_*``.

    The worker's garbage collector is tuned once the app is built: a check allocates hundreds of
    short-lived dicts and a batch millions, so collections ran every few checks and each old-generation
    collection walked the whole loaded rule pack, calendar and validators again. What exists at start-up
    is frozen, and the young generation collected less often.
    """
    app = create_app(Settings.from_env())
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    return app
