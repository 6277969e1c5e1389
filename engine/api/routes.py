"""The service's HTTP routes: ``router`` (the /v1 API, each route behind the API key check) and ``meta``
(/healthz and the docs page). ``engine.api.app`` mounts them, with the watch's routes between.

Request bodies are read by hand, not by FastAPI's body parameters, so that a body over the limit is
refused with 413 from its Content-Length or while streaming, before it is held in memory whole, and so
that an invalid case gets the same JSON-path errors as the CLI (``engine.cases.validate_case``).

The docs page at ``/docs`` is self-contained (inline CSS and JS, read from ``/openapi.json``), because
FastAPI's Swagger UI and ReDoc load their assets from a CDN and so do not work offline.
"""

from __future__ import annotations

import codecs
import hmac
import importlib.resources
import logging
from datetime import date
from functools import partial
from typing import Annotated

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from engine.api.errors import ERRORS, ApiError, ErrorBody, json_problem
from engine.api.responses import json_response
from engine.api.schemas import (
    BATCH_EXAMPLES,
    CASE_EXAMPLES,
    CASE_REF,
    BatchResult,
    Deadline,
    History,
    RuleList,
    WorkingDays,
)
from engine.api.service import Service, rule_summary
from engine.api.settings import MAX_BATCH_CASES, KeyHolder
from engine.calendar import WorkdayIndex, to_local_date
from engine.domain import LANGS, Lang
from engine.errors import CalendarRangeError
from engine.resources import local_data_dir
from engine.verdicts import Verdict

__all__ = [
    "DOCS_PAGE",
    "NDJSON_TYPES",
    "Caller",
    "Holder",
    "authenticate",
    "key_holder",
    "meta",
    "pick_lang",
    "read_limited",
    "router",
    "service_of",
]

log = logging.getLogger("casecheck.api")

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
DOCS_PAGE = importlib.resources.files("engine.api").joinpath("docs.html").read_text(encoding="utf-8")


def service_of(request: Request) -> Service:
    """The process's service, which ``create_app`` keeps in the app's state. Routes call this rather than
    have it injected (``Depends``): FastAPI resolves each dependency anew for every request."""
    return request.app.state.service


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the key of a name:key entry")
bearer = HTTPBearer(auto_error=False, description="the same key as a bearer token")


async def key_holder(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> KeyHolder | None:
    """Whose key the request carries, or None when the service is open (no keys configured)."""
    keys = service_of(request).keys
    if keys is None:
        return None
    offered = api_key or (credentials.credentials if credentials else None)
    if offered:
        found = None
        for key, holder in keys.items():  # compare with every key, in constant time
            if hmac.compare_digest(key.encode(), offered.encode()):
                found = holder
        if found is not None:
            return found
    raise ApiError(
        401,
        "a valid API key is required (X-API-Key or Authorization: Bearer)",
        headers={"WWW-Authenticate": "Bearer"},
    )


Holder = Annotated[KeyHolder | None, Depends(key_holder)]


async def authenticate(holder: Holder) -> str | None:
    """The recorded caller: the key's name, or None when the service is open."""
    return None if holder is None else holder.name


Caller = Annotated[str | None, Depends(authenticate)]
AsOf = Annotated[
    date | None,
    Query(
        description="judge open cases as of this date (default: today in Asia/Shanghai)",
        examples=["2026-11-24"],
    ),
]
LangQ = Annotated[
    Lang | None,
    Query(description="message language; overrides Accept-Language", examples=["en"]),
]
AcceptLanguage = Annotated[str | None, Header(include_in_schema=False)]
RuleId = Annotated[
    str, PathParam(description="e.g. water.no_external.2wd", examples=["water.no_external.2wd"])
]
CaseId = Annotated[str, PathParam(min_length=1, max_length=128, examples=["W-2026-0001"])]


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` (from Content-Length, else counted),
    or 408 when it does not arrive within the client timeout. A UTF-8 byte order mark (Notepad and
    Excel write one) is dropped."""
    try:
        with anyio.fail_after(service_of(request).settings.client_timeout):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(408, "the request body did not arrive in time") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if size > limit:
            raise ApiError(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks).removeprefix(codecs.BOM_UTF8)


def pick_lang(lang: str | None, accept_language: str | None) -> Lang:
    """``lang`` wins; else the best-weighted of zh/en in Accept-Language; else zh (SPEC: Chinese default)."""
    if lang in LANGS:
        return lang  # type: ignore[return-value]
    best: Lang = "zh"
    best_q = -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = primary, q  # type: ignore[assignment]
    return best


def _calendar_date(value: str, param: str, calendar: WorkdayIndex) -> date:
    """A query parameter as a local date inside the calendar, or a 422 naming the parameter."""
    try:
        day = to_local_date(value)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "invalid query", [{"path": f"query.{param}", "message": str(exc)}]) from None
    if not calendar.first <= day <= calendar.last:
        message = str(CalendarRangeError(day.year, calendar.covered))
        raise ApiError(422, "date outside the calendar", [{"path": f"query.{param}", "message": message}])
    return day


router = APIRouter()


@router.post(
    "/v1/check",
    summary="Check one case (durable executor)",
    response_model=Verdict,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CASE_REF, "examples": CASE_EXAMPLES}},
        }
    },
)
async def check(
    request: Request,
    who: Caller,
    as_of: AsOf = None,
    lang: LangQ = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    service = service_of(request)
    body = await read_limited(request, service.settings.max_body)
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(422, "invalid JSON", [json_problem(exc)]) from None
    verdict = service.check_one(obj, as_of, pick_lang(lang, accept_language), who)
    return json_response(verdict)


@router.post(
    "/v1/check/batch",
    summary="Check up to 10,000 cases (columnar executor)",
    description=(
        "Body: a JSON array of case records, or NDJSON (one record per line; send Content-Type "
        "application/x-ndjson). One result per record in input order: the verdict, or the errors "
        "with their JSON paths (and the line, for NDJSON that is not JSON)."
    ),
    response_model=BatchResult,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": CASE_REF, "maxItems": MAX_BATCH_CASES},
                    "examples": BATCH_EXAMPLES,
                }
            },
        }
    },
)
async def check_batch(
    request: Request,
    who: Caller,
    as_of: AsOf = None,
    lang: LangQ = None,
    accept_language: AcceptLanguage = None,
) -> Response:
    service = service_of(request)
    body = await read_limited(request, service.settings.max_batch_body)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    ndjson = content_type in NDJSON_TYPES or not body.lstrip().startswith(b"[")
    run = partial(service.check_batch, body, ndjson, as_of, pick_lang(lang, accept_language), who)
    payload = await anyio.to_thread.run_sync(run, limiter=service.batch_threads)
    return Response(payload, media_type="application/json")


@router.get(
    "/v1/checks/{case_id}",
    summary="The logged checks of one case, oldest first",
    description="A caller sees its own checks; a key marked `auditor` in the keys file sees every caller's.",
    response_model=History,
    responses=ERRORS,
)
async def checks(case_id: CaseId, request: Request, holder: Holder) -> Response:
    service = service_of(request)
    # A caller reads its own checks; an auditor's key (and an open service) reads every caller's.
    only = None if holder is None or holder.auditor else holder.name
    history = await anyio.to_thread.run_sync(partial(service.store.history, case_id, caller=only))
    return json_response({"case_id": case_id, "checks": history})


@router.get("/v1/rules", summary="Every rule of the pack", response_model=RuleList, responses=ERRORS)
async def rules(
    request: Request,
    who: Caller,
    kind: Annotated[
        str | None, Query(description="only this kind's rules", examples=["water_connection"])
    ] = None,
) -> Response:
    pack = service_of(request).durable.pack
    listed = [rule_summary(r) for r in pack.by_id.values() if kind is None or r.kind in (kind, "*")]
    return json_response({"ruleset": pack.version, "rules": listed})


@router.get(
    "/v1/rules/{rule_id}",
    summary="One rule in full, with the clause it comes from",
    responses={404: {"model": ErrorBody, "description": "no such rule"}, **ERRORS},
)
async def rule(rule_id: RuleId, request: Request, who: Caller) -> Response:
    pack = service_of(request).durable.pack
    found = pack.by_id.get(rule_id)
    if found is None:
        raise ApiError(404, f"unknown rule {rule_id!r}; GET /v1/rules lists them")
    body = found.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["reference"] = found.source.reference
    body["ruleset"] = pack.version
    return json_response(body)


@router.get(
    "/v1/calendar/working-days",
    summary="Working days d with date(start) < d ≤ date(end)",
    response_model=WorkingDays,
    responses=ERRORS,
)
async def working_days(
    request: Request,
    who: Caller,
    start: Annotated[
        str,
        Query(
            description="ISO 8601 date or timestamp (Asia/Shanghai unless offset)",
            examples=["2020-01-23"],
        ),
    ],
    end: Annotated[str, Query(description="ISO 8601 date or timestamp", examples=["2020-02-04"])],
) -> Response:
    calendar = service_of(request).durable.calendar
    first = _calendar_date(start, "start", calendar)
    last = _calendar_date(end, "end", calendar)
    count = calendar.working_days_between(first, last)
    return json_response({"start": first, "end": last, "working_days": count, "calendar": calendar.version})


@router.get(
    "/v1/calendar/deadline",
    summary="The days-th working day after date(start)",
    response_model=Deadline,
    responses=ERRORS,
)
async def deadline(
    request: Request,
    who: Caller,
    start: Annotated[str, Query(description="ISO 8601 date or timestamp", examples=["2026-09-30"])],
    days: Annotated[
        int, Query(ge=-10_000, le=10_000, description="working days; negative counts back", examples=[2])
    ],
) -> Response:
    calendar = service_of(request).durable.calendar
    first = _calendar_date(start, "start", calendar)
    try:
        due = calendar.add_working_days(first, days)
    except CalendarRangeError as exc:
        raise ApiError(
            422, "deadline outside the calendar", [{"path": "query.days", "message": str(exc)}]
        ) from None
    return json_response({"start": first, "days": days, "deadline": due, "calendar": calendar.version})


meta = APIRouter()


@meta.get("/healthz", summary="Liveness and readiness (the store answers)")
async def healthz(request: Request) -> Response:
    service = service_of(request)
    try:
        service.store.ping()
    except Exception:
        log.exception("store ping failed")
        return json_response({"status": "unavailable", "store": service.store.kind}, 503)
    pack = service.durable.pack
    return json_response(
        {
            "status": "ok",
            "ruleset": pack.version,
            "packs": pack.names,
            "calendar": service.durable.calendar.version,
            "overlay": service.settings.overlay,
            "data_dir": str(local_data_dir()) if local_data_dir() else None,
            "store": service.store.kind,
        }
    )


@meta.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)
