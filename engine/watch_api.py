"""The watch's HTTP routes: case updates in (PUT /v1/cases/{case_id}, POST /v1/cases), the watch list and
the cards out (GET /v1/watch, GET /v1/alerts, GET /v1/alerts/stream). Kept apart from ``engine.api``,
which only mounts them."""

import importlib.resources
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import FastAPI, Header, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from engine.cases import validate_case
from engine.core import CasesRefused
from engine.errors import CalendarRangeError, InvalidCase
from engine.watch import StaleUpdate, Undecidable, Watcher, parse_updated_at

__all__ = [
    "STREAM_HEARTBEAT_SECONDS",
    "STREAM_POLL_SECONDS",
    "SWEEP_SECONDS",
    "WATCH_PAGE",
    "add_watch_routes",
    "card_events",
    "sweep_watch",
]

log = logging.getLogger("casecheck.watch")
LevelQ = Annotated[
    Literal["yellow", "red"] | None, Query(description="only cards of this level", examples=["red"])
]
CaseLevelQ = Annotated[
    Literal["green", "yellow", "red"] | None, Query(description="only this level", examples=["yellow"])
]
DistrictQ = Annotated[
    str | None, Query(max_length=128, description="only this district", examples=["海曙区"])
]
KindQ = Annotated[
    str | None, Query(max_length=64, description="only this kind", examples=["water_connection"])
]
CaseIdP = Annotated[str, Path(min_length=1, max_length=128, examples=["W-2026-0001"])]


# The district office's page: self-contained (no external script or style), read once from the package.
WATCH_PAGE = importlib.resources.files("engine").joinpath("watch_page.html").read_text(encoding="utf-8")
SWEEP_SECONDS = 30.0  # how often the service looks for due cards; a card is raised at most this late
STREAM_POLL_SECONDS = 1.0  # how often a stream reads new cards from the store (every worker writes there)
STREAM_HEARTBEAT_SECONDS = 15.0  # a comment line that keeps proxies from closing an idle stream


async def sweep_watch(watcher: Watcher, every: float = SWEEP_SECONDS) -> None:
    """Raise the due cards now (those that fell due while the service was down), then every ``every``
    seconds; a failing sweep is logged and retried, never stops the service."""
    while True:
        try:
            await anyio.to_thread.run_sync(watcher.sweep)
        except Exception:
            log.exception("watch sweep failed; retrying in %s s", every)
        await anyio.sleep(every)


def _split_updated_at(obj: Any) -> tuple[Any, datetime | None]:
    """The record without ``updated_at`` (the case as /v1/check takes it) and the moment, if given."""
    if isinstance(obj, dict) and "updated_at" in obj:
        obj = dict(obj)
        return obj, parse_updated_at(obj.pop("updated_at"))
    return obj, None


def add_watch_routes(
    app: FastAPI,
    watcher: Watcher,
    read_body: Callable[[Request, bool], Any],
    errors: type[Exception],
    caller: Any,
    max_cases: int,
) -> None:
    """Mount the watch routes; ``read_body`` reads a request's body within the service's limits and
    ``errors`` is the service's error type (status, detail, errors with JSON paths)."""
    api_error: Any = errors

    @app.put("/v1/cases/{case_id}", summary="Put a case's current record (durable executor)")
    async def put_case(request: Request, case_id: CaseIdP, who: caller) -> Response:
        body = await read_body(request, False)
        try:
            obj, updated_at = _split_updated_at(orjson.loads(body))
            case = validate_case(obj)
        except orjson.JSONDecodeError as exc:
            raise api_error(422, "invalid JSON", [{"path": "$", "message": f"invalid JSON: {exc}"}]) from None
        except InvalidCase as exc:
            raise api_error(422, "invalid case", exc.items()) from None
        if case.case_id != case_id:
            message = f"must equal the case_id of the URL ({case_id!r})"
            raise api_error(422, "invalid case", [{"path": "case_id", "message": message}])
        try:
            answer = await anyio.to_thread.run_sync(lambda: watcher.update(obj, who, updated_at, case))
        except StaleUpdate as exc:
            raise api_error(409, str(exc)) from None
        except (CasesRefused, CalendarRangeError) as exc:
            message = next(iter(exc.refused.values())) if isinstance(exc, CasesRefused) else str(exc)
            raise api_error(422, "case cannot be judged today", [{"path": "$", "message": message}]) from None
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.post("/v1/cases", summary="Put many cases' records (NDJSON or a JSON array; columnar executor)")
    async def post_cases(request: Request, who: caller) -> Response:
        body = await read_body(request, True)
        lines: list[tuple[int | None, bytes]]
        if body.lstrip().startswith(b"["):
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise api_error(
                    422, "invalid JSON", [{"path": "$", "message": f"invalid JSON: {exc}"}]
                ) from None
            lines = [(None, orjson.dumps(obj)) for obj in parsed]
        else:
            lines = [(n, line) for n, line in enumerate(body.splitlines(), 1) if line.strip()]
        if len(lines) > max_cases:
            raise api_error(413, f"{len(lines)} cases exceed the limit of {max_cases} per request")
        results: list[dict[str, Any] | None] = [None] * len(lines)
        items, positions = [], []
        for index, (line, raw) in enumerate(lines):
            where = {"index": index} if line is None else {"index": index, "line": line}
            try:
                obj, updated_at = _split_updated_at(orjson.loads(raw))
                items.append((obj, validate_case(obj), updated_at))
                positions.append(index)
            except orjson.JSONDecodeError as exc:
                results[index] = {**where, "ok": False, "errors": [{"path": "$", "message": str(exc)}]}
            except InvalidCase as exc:
                results[index] = {**where, "ok": False, "errors": exc.items()}
        answers = await anyio.to_thread.run_sync(lambda: watcher.update_many(items, who))
        for index, answer in zip(positions, answers, strict=True):
            if isinstance(answer, StaleUpdate):
                results[index] = {
                    "index": index,
                    "ok": False,
                    "status": 409,
                    "errors": [{"path": "updated_at", "message": str(answer)}],
                }
            elif isinstance(answer, Undecidable):
                results[index] = {
                    "index": index,
                    "ok": False,
                    "errors": [{"path": "$", "message": str(answer)}],
                }
            else:
                results[index] = {"index": index, "ok": True, **answer}
        return Response(orjson.dumps({"results": results}), media_type="application/json")

    @app.get("/watch", include_in_schema=False)
    async def watch_page() -> HTMLResponse:
        return HTMLResponse(WATCH_PAGE)

    @app.get("/v1/watch", summary="The open cases: nearest deadline, days left, level")
    async def watch(
        who: caller,
        district: DistrictQ = None,
        level: CaseLevelQ = None,
        kind: KindQ = None,
    ) -> Response:
        filters = {"district": district, "level": level, "kind": kind}
        cases = await anyio.to_thread.run_sync(watcher.watch_list, filters)
        return Response(orjson.dumps({"cases": cases}), media_type="application/json")

    @app.get("/v1/alerts", summary="The cards raised after a cursor, oldest first")
    async def alerts(
        who: caller,
        after: Annotated[int, Query(ge=0, description="the cursor of the last card seen", examples=[0])] = 0,
        level: LevelQ = None,
        district: DistrictQ = None,
        kind: KindQ = None,
        limit: Annotated[int, Query(ge=1, le=10_000, description="at most this many", examples=[100])] = 1000,
    ) -> Response:
        filters = {"level": level, "district": district, "kind": kind}
        cards = await anyio.to_thread.run_sync(lambda: watcher.watch.cards(after, limit, filters))
        # The cursor moves past every card read, so a filtered reader never reads one twice.
        cursor = cards[-1]["seq"] if cards else after
        return Response(orjson.dumps({"alerts": cards, "cursor": cursor}), media_type="application/json")

    @app.get(
        "/v1/alerts/stream",
        summary="The cards as Server-Sent Events; reconnect with Last-Event-ID to resume without gaps",
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def alerts_stream(
        who: caller,
        after: Annotated[
            int, Query(ge=0, description="the cursor to start after (Last-Event-ID wins)", examples=[0])
        ] = 0,
        level: LevelQ = None,
        district: DistrictQ = None,
        kind: KindQ = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", include_in_schema=False)] = None,
    ) -> StreamingResponse:
        start = after
        if last_event_id is not None:
            if not last_event_id.isdigit():
                message = f"must be the id of a card event (a cursor), got {last_event_id!r}"
                raise api_error(
                    422, "invalid Last-Event-ID", [{"path": "header.Last-Event-ID", "message": message}]
                )
            start = int(last_event_id)
        filters = {"level": level, "district": district, "kind": kind}
        return StreamingResponse(
            card_events(watcher, start, filters),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


async def card_events(
    watcher: Watcher, after: int, filters: dict[str, str | None], poll: float = STREAM_POLL_SECONDS
) -> AsyncIterator[bytes]:
    """Each card after the cursor as an SSE event (``id`` = its cursor), then the new ones as they are
    raised. The store is read, not an in-process queue, so a card raised by another worker or before a
    restart is streamed too, and a reconnect's Last-Event-ID resumes exactly after the last event seen."""
    cursor = after
    idle = 0.0
    yield b"retry: 2000\n\n"
    while True:
        cards = await anyio.to_thread.run_sync(partial(watcher.watch.cards, cursor, 1000, filters))
        for card in cards:
            yield b"id: %d\nevent: card\ndata: %s\n\n" % (card["seq"], orjson.dumps(card))
        if cards:
            cursor, idle = cards[-1]["seq"], 0.0
            continue
        await anyio.sleep(poll)
        idle += poll
        if idle >= STREAM_HEARTBEAT_SECONDS:
            idle = 0.0
            yield b": keep-alive\n\n"
