"""The HTTP service over real HTTP: a uvicorn server in a subprocess on a free loopback port.

A subprocess, not FastAPI's TestClient, so that what is tested is what runs: ``engine.api.serve`` with
its worker processes, the body limits as uvicorn streams the body, the SQLite file shared by workers,
and a restart that has to find the verdict log on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from engine import Engine
from engine.api.service import batch_answer
from engine.errors import InvalidCase
from engine.generate import generate_cases
from engine.store import CheckRecord, CheckRows, Store, canonical_sha256, open_store
from engine.verdicts import SerialisedVerdicts, Verdict

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "cases" / "samples"
AS_OF = "2026-11-24"


# ---------------------------------------------------------------------------------------------------------
# A live server
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running(workdir: Path, store: str, workers: int = 1, **options: Any) -> Iterator[Server]:
    """``engine.api.serve`` in a subprocess; yields once /healthz answers, stops it afterwards."""
    port = free_port()
    args = ", ".join(
        f"{k}=Path({str(v)!r})" if isinstance(v, Path) else f"{k}={v!r}" for k, v in options.items()
    )
    code = (
        "from pathlib import Path; from engine.api import serve; "
        f"serve(host='127.0.0.1', port={port}, store={store!r}, workers={workers}{', ' + args if args else ''})"
    )
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{server.log_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not become healthy:\n{server.log_text()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open server with two workers sharing one SQLite file."""
    work = tmp_path_factory.mktemp("api")
    with running(work, f"sqlite:///{work}/verdicts.db", workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with API keys and small body limits (1 KiB single, 4 KiB batch)."""
    work = tmp_path_factory.mktemp("guarded")
    keys = work / "keys.txt"
    keys.write_text(
        "# callers\nalice:alice-secret-1\nbob:bob-secret-2\ncarol:carol-secret-3 auditor\n", encoding="utf-8"
    )
    with running(
        work, f"sqlite:///{work}/verdicts.db", api_keys=keys, max_body=1024, max_batch_body=4096
    ) as live:
        yield live


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def sample_records() -> list[tuple[str, int, bytes]]:
    """Every non-blank line of every sample NDJSON file: (file, line number, raw bytes)."""
    records = []
    for path in sorted(SAMPLES.glob("*.ndjson")):
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.strip():
                records.append((path.name, number, line))
    return records


def canonical(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict in one shape, whether it came over HTTP (absent Nones) or from the model."""
    return Verdict.model_validate(verdict).model_dump(mode="json")


# ---------------------------------------------------------------------------------------------------------
# Single checks
# ---------------------------------------------------------------------------------------------------------


def test_every_sample_case_gets_the_engines_verdict(client: httpx.Client, engine: Engine) -> None:
    records = sample_records()
    assert len(records) > 50
    checked = 0
    for name, line, raw in records:
        where = f"{name}:{line}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            response = client.post("/v1/check", params={"as_of": AS_OF}, content=raw)
            assert response.status_code == 422, where
            assert response.json()["errors"][0]["path"] == "$", where
            continue
        response = client.post("/v1/check", params={"as_of": AS_OF}, content=raw)
        try:
            expected = engine.check(obj, as_of=AS_OF)
        except InvalidCase as exc:
            assert response.status_code == 422, where
            assert {e["path"] for e in response.json()["errors"]} == {e.path for e in exc.errors}, where
            continue
        assert response.status_code == 200, f"{where}: {response.text}"
        assert canonical(response.json()) == expected.model_dump(mode="json"), where
        checked += 1
    assert checked > 50


def test_language_from_query_and_accept_language(client: httpx.Client, engine: Engine) -> None:
    raw = (SAMPLES / "water_connection.ndjson").read_bytes().splitlines()[0]
    english = engine.check(orjson.loads(raw), as_of=AS_OF, lang="en").model_dump(mode="json")
    chinese = engine.check(orjson.loads(raw), as_of=AS_OF, lang="zh").model_dump(mode="json")
    by_header = client.post(
        "/v1/check", params={"as_of": AS_OF}, content=raw, headers={"Accept-Language": "en-GB,zh;q=0.5"}
    )
    assert canonical(by_header.json()) == english
    by_query = client.post(
        "/v1/check", params={"as_of": AS_OF, "lang": "zh"}, content=raw, headers={"Accept-Language": "en"}
    )
    assert canonical(by_query.json()) == chinese
    default = client.post("/v1/check", params={"as_of": AS_OF}, content=raw)
    assert canonical(default.json()) == chinese


def test_bad_json_and_invalid_cases_are_422_with_paths(client: httpx.Client) -> None:
    response = client.post("/v1/check", content=b'{"case_id": ')
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "$"

    case = {
        "case_id": "W-BAD",
        "kind": "water_connection",
        "customer_type": "somebody",
        "applied_at": "2026-03-02",
        "connected_at": "2026-03-01",
        "external_works_m": -1,
        "steps": 2,
        "materials": 1,
        "pauses": [{"reason": "other", "start": "2026-03-02", "end": "not a date"}],
    }
    response = client.post("/v1/check", json=case)
    assert response.status_code == 422
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"customer_type", "connected_at", "external_works_m", "pauses[0].end"}
    assert all(e["message"] for e in response.json()["errors"])

    response = client.post("/v1/check", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": "$", "message": "a case must be a JSON object"}]

    response = client.post("/v1/check", params={"as_of": "yesterday"}, json=case)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "query.as_of"
    assert "Traceback" not in response.text


# ---------------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------------


def test_batch_ndjson_keeps_order_and_reports_errors_by_index(client: httpx.Client, engine: Engine) -> None:
    body = (SAMPLES / "mixed_with_errors.ndjson").read_bytes()
    lines = [line for line in body.splitlines() if line.strip()]
    response = client.post(
        "/v1/check/batch",
        params={"as_of": AS_OF},
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["count"] == len(lines) == len(answer["results"])
    assert [r["index"] for r in answer["results"]] == list(range(len(lines)))
    assert answer["checked"] + answer["invalid"] == answer["count"]
    for item, line in zip(answer["results"], lines, strict=True):
        try:
            obj = orjson.loads(line)
            expected: Any = engine.check(obj, as_of=AS_OF).model_dump(mode="json")
        except orjson.JSONDecodeError:
            assert item["ok"] is False and item["errors"][0]["path"] == "$"
            continue
        except InvalidCase as exc:
            assert item["ok"] is False
            assert item["case_id"] == obj.get("case_id")
            assert [e["path"] for e in item["errors"]] == [e.path for e in exc.errors]
            continue
        assert item["ok"] is True
        # The batch runs the columnar executor; it must agree with the durable one.
        assert canonical(item["verdict"]) == expected
    assert answer["invalid"] >= 2


def test_batch_json_array(client: httpx.Client, engine: Engine) -> None:
    cases = [
        orjson.loads(line) for line in (SAMPLES / "power_connection.ndjson").read_bytes().splitlines()[:5]
    ]
    broken = {**cases[0], "case_id": "P-BROKEN", "steps": "many"}
    duplicate = dict(cases[1])
    batch = [cases[0], broken, cases[1], cases[2], duplicate, 42]
    response = client.post("/v1/check/batch", params={"as_of": AS_OF, "lang": "en"}, json=batch)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["ok"] for r in results] == [True, False, True, True, False, False]
    assert results[1]["errors"] == [{"path": "steps", "message": "must be an integer"}]
    assert results[1]["case_id"] == "P-BROKEN"
    assert results[4]["errors"][0]["path"] == "case_id" and "index 2" in results[4]["errors"][0]["message"]
    assert results[5]["errors"] == [{"path": "$", "message": "a case must be a JSON object"}]
    for position in (0, 2, 3):
        expected = engine.check(batch[position], as_of=AS_OF, lang="en").model_dump(mode="json")
        assert canonical(results[position]["verdict"]) == expected

    assert client.post("/v1/check/batch", content=b"[1, 2").status_code == 422
    assert client.post("/v1/check/batch", json=[]).json()["results"] == []


def mixed_batch(seed: int, suffix: str) -> list[bytes]:
    """NDJSON lines: generated records (ids made unique to this batch), some made invalid, some repeating
    an earlier id, lines that are not JSON or not an object, and blank lines."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    for record in generate_cases(300, seed=seed):
        record["case_id"] += suffix
        roll = rng.random()
        if roll < 0.05:
            record["steps"] = "many"
        elif roll < 0.08:
            record.pop("kind")
        elif roll < 0.12 and lines:
            record["case_id"] = orjson.loads(
                rng.choice([x for x in lines if x.startswith(b"{")] or [b"{}"])
            ).get("case_id", record["case_id"])
        line = orjson.dumps(record)
        if roll > 0.97:
            line = line[: len(line) // 2]
        elif roll > 0.95:
            line = rng.choice([b"", b"  ", b"[1, 2]", b"42"])
        lines.append(line)
    return lines


def is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


@pytest.mark.parametrize(("ndjson", "lang"), [(True, "zh"), (False, "en")])
def test_batch_answers_each_record_as_a_single_check_does(
    client: httpx.Client, ndjson: bool, lang: str
) -> None:
    """Each item of a batch is what ``POST /v1/check`` answers for its record alone (pydantic row by row,
    the durable executor), except that a repeated case_id is refused at its first index; each checked
    record is logged with its verdict and statuses."""
    lines = mixed_batch(11 if ndjson else 12, "-nd" if ndjson else "-array")
    if ndjson:
        body = b"\n".join(lines)
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    else:
        kept = [line for line in lines if is_json(line)]
        body = b"[" + b",".join(kept) + b"]"
        numbered = [(None, line) for line in kept]
    params = {"as_of": AS_OF, "lang": lang}
    response = client.post(
        "/v1/check/batch",
        params=params,
        content=body,
        headers={"Content-Type": "application/x-ndjson" if ndjson else "application/json"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    seen: dict[str, int] = {}
    kinds = set()
    for index, (item, (number, line)) in enumerate(zip(answer["results"], numbered, strict=True)):
        single = client.post("/v1/check", params=params, content=line)
        if single.status_code == 200:
            verdict = single.json()
            if verdict["case_id"] in seen:
                first = seen[verdict["case_id"]]
                message = f"duplicate case_id: already at index {first} (must be unique in a batch)"
                expected = {"index": index, "ok": False, "case_id": verdict["case_id"]}
                expected["errors"] = [{"path": "case_id", "message": message}]
                kinds.add("duplicate")
            else:
                seen[verdict["case_id"]] = index
                expected = {"index": index, "ok": True, "verdict": verdict}
                logged = client.get(f"/v1/checks/{verdict['case_id']}").json()["checks"][0]
                assert logged["verdict"] == verdict["verdict"]
                assert logged["statuses"] == {r["rule"]: r["status"] for r in verdict["results"]}
                assert logged["case_sha256"] == canonical_sha256(orjson.loads(line))
                kinds.add("valid")
        else:
            assert single.status_code == 422, single.text
            errors = single.json()["errors"]
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                expected = {"index": index, "ok": False, "line": number, "errors": errors}
                kinds.add("not JSON")
            else:
                case_id = record.get("case_id") if isinstance(record, dict) else None
                expected = {"index": index, "ok": False, "case_id": case_id, "errors": errors}
                kinds.add("invalid")
        assert item == expected
    assert answer["count"] == len(numbered)
    assert answer["checked"] == len(seen) == answer["count"] - answer["invalid"]
    assert kinds == (
        {"valid", "invalid", "duplicate", "not JSON"} if ndjson else {"valid", "invalid", "duplicate"}
    )


@pytest.mark.parametrize("pattern", ["", "r", "v", "rv", "vr", "vvrv", "rrr", "vvv"])
def test_batch_answer_is_orjson_of_the_whole(pattern: str) -> None:
    """``batch_answer`` joins pre-serialised pieces; it must be byte for byte ``orjson.dumps`` of the answer,
    whichever items (r: refused, v: checked) come first or last."""
    verdicts = [
        {"case_id": f"C-{i}", "kind": "k", "results": [{"rule": "x", "n": i}]} for i in range(len(pattern))
    ]
    items = [
        {"index": i, "ok": True, "verdict": verdicts[i]}
        if c == "v"
        else {"index": i, "ok": False, "errors": []}
        for i, c in enumerate(pattern)
    ]
    heads = [
        b'{"case_id":' + orjson.dumps(v["case_id"])
        for v, c in zip(verdicts, pattern, strict=True)
        if c == "v"
    ]
    wholes = [orjson.dumps(v) for v, c in zip(verdicts, pattern, strict=True) if c == "v"]
    rests = [whole[len(head) :] for head, whole in zip(heads, wholes, strict=True)]
    pieces = SerialisedVerdicts(head=heads, rest=rests, verdict=[], statuses=[])
    refused = [None if c == "v" else orjson.dumps(item) for c, item in zip(pattern, items, strict=True)]
    checked = pattern.count("v")
    expected = {
        "count": len(pattern),
        "checked": checked,
        "invalid": len(pattern) - checked,
        "results": items,
    }
    assert batch_answer(refused, pieces) == orjson.dumps(expected)


def test_batch_over_10000_cases_is_refused(client: httpx.Client) -> None:
    body = b"\n".join([b"{}"] * 10_001)
    response = client.post("/v1/check/batch", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 413
    assert "10000" in response.json()["detail"]


# ---------------------------------------------------------------------------------------------------------
# Limits, keys
# ---------------------------------------------------------------------------------------------------------


def test_oversized_bodies_are_413(guarded: Server) -> None:
    headers = {"X-API-Key": "alice-secret-1"}
    with httpx.Client(base_url=guarded.url, headers=headers, timeout=30) as http:
        big = b'{"case_id": "' + b"x" * 2000 + b'"}'
        assert http.post("/v1/check", content=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the server has to count while streaming
            for _ in range(100):
                yield b" " * 100

        response = http.post("/v1/check", content=chunks())
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]
        assert http.post("/v1/check/batch", content=b"[" + b" " * 5000 + b"]").status_code == 413
        # Under the limits the same server answers normally.
        small = (SAMPLES / "loan.ndjson").read_bytes().splitlines()[0]
        assert http.post("/v1/check", content=small, params={"as_of": AS_OF}).status_code == 200


def test_api_keys(guarded: Server) -> None:
    raw = (SAMPLES / "ccc_exemption.ndjson").read_bytes().splitlines()[0]
    case_id = orjson.loads(raw)["case_id"]
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        assert http.post("/v1/check", content=raw).status_code == 401
        assert http.post("/v1/check", content=raw, headers={"X-API-Key": "wrong"}).status_code == 401
        assert http.get("/v1/rules").status_code == 401
        assert http.get(f"/v1/checks/{case_id}").status_code == 401
        assert http.get("/healthz").status_code == 200  # probes need no key
        ok = http.post(
            "/v1/check", content=raw, params={"as_of": AS_OF}, headers={"X-API-Key": "alice-secret-1"}
        )
        assert ok.status_code == 200
        ok = http.post(
            "/v1/check",
            content=raw,
            params={"as_of": AS_OF},
            headers={"Authorization": "Bearer bob-secret-2"},
        )
        assert ok.status_code == 200
        seen = {
            name: http.get(f"/v1/checks/{case_id}", headers={"X-API-Key": key}).json()["checks"]
            for name, key in (("bob", "bob-secret-2"), ("carol", "carol-secret-3"))
        }
    # A caller reads only its own checks (any key used to read every caller's); an auditor reads all.
    assert [entry["caller"] for entry in seen["bob"]] == ["bob"]
    assert [entry["caller"] for entry in seen["carol"]] == ["alice", "bob"]
    assert "open to anyone" not in guarded.log_text()


def test_open_service_warns_at_startup(server: Server) -> None:
    assert "no API keys configured" in server.log_text()


# ---------------------------------------------------------------------------------------------------------
# Rules, calendar, health, OpenAPI, docs
# ---------------------------------------------------------------------------------------------------------


def test_rules(client: httpx.Client) -> None:
    listed = client.get("/v1/rules").json()
    ids = {rule["id"] for rule in listed["rules"]}
    assert "water.no_external.2wd" in ids and listed["ruleset"].startswith("ningbo-2020@")
    water = client.get("/v1/rules", params={"kind": "water_connection"}).json()["rules"]
    assert water and all(rule["kind"] in ("water_connection", "*") for rule in water)
    rule = client.get("/v1/rules/water.no_external.2wd").json()
    assert rule["id"] == "water.no_external.2wd"
    assert rule["source"]["clause"]  # the Chinese clause quoted
    assert rule["require"]["limit"] == 2
    missing = client.get("/v1/rules/no.such.rule")
    assert missing.status_code == 404
    assert "no.such.rule" in missing.json()["detail"]


def test_calendar_endpoints(client: httpx.Client) -> None:
    # 2020: the Spring Festival holiday was extended to 2 February; 3 and 4 February are working days.
    answer = client.get(
        "/v1/calendar/working-days", params={"start": "2020-01-23", "end": "2020-02-04"}
    ).json()
    assert answer["working_days"] == 2
    same_day = client.get(
        "/v1/calendar/working-days", params={"start": "2026-03-02T09:00", "end": "2026-03-02T18:00"}
    ).json()
    assert same_day["working_days"] == 0
    # Saturday 2026-02-14 is a make-up working day (调休上班).
    answer = client.get("/v1/calendar/deadline", params={"start": "2026-02-13", "days": 1}).json()
    assert answer["deadline"] == "2026-02-14"
    answer = client.get("/v1/calendar/deadline", params={"start": "2026-03-06", "days": 1}).json()
    assert answer["deadline"] == "2026-03-09"

    bad = client.get("/v1/calendar/working-days", params={"start": "soon", "end": "2026-01-01"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "query.start"
    outside = client.get("/v1/calendar/working-days", params={"start": "2026-01-01", "end": "2031-01-01"})
    assert outside.status_code == 422 and outside.json()["errors"][0]["path"] == "query.end"
    assert "2031" in outside.json()["errors"][0]["message"]
    beyond = client.get("/v1/calendar/deadline", params={"start": "2026-12-30", "days": 50})
    assert beyond.status_code == 422 and beyond.json()["errors"][0]["path"] == "query.days"
    missing = client.get("/v1/calendar/deadline", params={"start": "2026-12-30"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "query.days"


def test_healthz(client: httpx.Client) -> None:
    answer = client.get("/healthz").json()
    assert answer["status"] == "ok" and answer["store"] == "sqlite"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    expected = {
        ("post", "/v1/check"),
        ("post", "/v1/check/batch"),
        ("get", "/v1/checks/{case_id}"),
        ("get", "/v1/rules"),
        ("get", "/v1/rules/{rule_id}"),
        ("get", "/v1/calendar/working-days"),
        ("get", "/v1/calendar/deadline"),
        ("put", "/v1/cases/{case_id}"),
        ("post", "/v1/cases"),
        ("get", "/v1/watch"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/stream"),
        ("get", "/healthz"),
    }
    found = {(method, path) for path, item in document["paths"].items() for method in item}
    assert found == expected
    schemas = document["components"]["schemas"]
    for ref in set(_refs(document)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"
    # Every schema is a valid JSON Schema, and the case schema accepts a sample case.
    import jsonschema_rs

    resolvable = {**document, "$id": "urn:casecheck"}
    case_validator = jsonschema_rs.validator_for(
        {"$ref": "urn:casecheck#/components/schemas/CaseRecord"},
        registry=jsonschema_rs.Registry([("urn:casecheck", resolvable)]),
    )
    sample = orjson.loads((SAMPLES / "water_connection.ndjson").read_bytes().splitlines()[0])
    assert case_validator.is_valid(sample)
    assert not case_validator.is_valid({"kind": "water_connection"})
    # schemathesis parses it too (the fuzz test below relies on it).
    assert len(list(schemathesis.openapi.from_dict(document).get_all_operations())) == len(expected)


def _events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` card events of an SSE response's lines (id, event, data), comments skipped."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                events.append({**fields, "data": orjson.loads(fields["data"])})
                if len(events) == count:
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def test_alerts_stream_resumes_after_last_event_id_without_gaps(client: httpx.Client) -> None:
    """Cards as Server-Sent Events, from two workers' shared store; a reconnect with Last-Event-ID gets
    exactly the cards after it, including one raised while nobody was connected."""
    district = "SSE测试区"

    def overdue(case_id: str) -> None:  # open, applied weeks ago: past its 2-working-day limit, a red card
        case = {
            "case_id": case_id,
            "kind": "water_connection",
            "customer_type": "non_residential",
            "applied_at": "2026-11-02T09:00:00+08:00",
            "external_works_m": 0,
            "steps": 2,
            "materials": 1,
            "district": district,
        }
        assert client.put(f"/v1/cases/{case_id}", json=case).status_code == 200

    start = client.get("/v1/alerts").json()["cursor"]
    overdue("SSE-1")
    params = {"district": district}
    with client.stream(
        "GET", "/v1/alerts/stream", params=params, headers={"Last-Event-ID": str(start)}
    ) as sse:
        assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
        (first,) = _events(sse.iter_lines(), 1)
    assert first["event"] == "card" and first["data"]["id"] == "red:water.no_external.2wd:SSE-1"
    assert first["id"] == str(first["data"]["seq"])
    overdue("SSE-2")  # raised while disconnected
    with client.stream(
        "GET", "/v1/alerts/stream", params=params, headers={"Last-Event-ID": first["id"]}
    ) as sse:
        lines = sse.iter_lines()
        (second,) = _events(lines, 1)
        overdue("SSE-3")  # raised while connected: streamed within a poll
        (third,) = _events(lines, 1)
    assert [second["data"]["case_id"], third["data"]["case_id"]] == ["SSE-2", "SSE-3"]
    assert int(first["id"]) < int(second["id"]) < int(third["id"])
    bad = client.get("/v1/alerts/stream", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "header.Last-Event-ID"


def test_docs_page_is_self_contained(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page.text, flags=re.IGNORECASE)
    assert not [link for link in links if re.match(r"(https?:)?//", link)], links
    assert not re.search(r"https?://", page.text)
    assert "/openapi.json" in page.text
    assert client.get("/redoc").status_code == 404


# ---------------------------------------------------------------------------------------------------------
# The verdict log
# ---------------------------------------------------------------------------------------------------------


def test_verdict_log_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/log.db"
    case = orjson.loads((SAMPLES / "gas_connection.ndjson").read_bytes().splitlines()[0])
    case["case_id"] = "G-RESTART-1"
    reordered = dict(reversed(list(case.items())))  # same case, other key order: same digest
    with running(tmp_path, store) as live:
        first = httpx.post(f"{live.url}/v1/check", params={"as_of": AS_OF}, json=case, timeout=30)
        second = httpx.post(
            f"{live.url}/v1/check", params={"as_of": "2026-01-05"}, json=reordered, timeout=30
        )
        assert first.status_code == second.status_code == 200
    with running(tmp_path, store) as live:
        history = httpx.get(f"{live.url}/v1/checks/G-RESTART-1", timeout=30).json()["checks"]
        assert httpx.get(f"{live.url}/v1/checks/NEVER-SEEN", timeout=30).json()["checks"] == []
    assert len(history) == 2
    verdict = first.json()
    entry = history[0]
    assert entry["case_sha256"] == canonical_sha256(case) == history[1]["case_sha256"]
    assert entry["verdict"] == verdict["verdict"]
    assert entry["statuses"] == {r["rule"]: r["status"] for r in verdict["results"]}
    assert (entry["ruleset"], entry["calendar"]) == (verdict["ruleset"], verdict["calendar"])
    assert [h["as_of"] for h in history] == [AS_OF, "2026-01-05"]
    assert entry["caller"] is None and entry["checked_at"].endswith("+00:00")
    # WAL mode, as promised.
    import sqlite3

    with sqlite3.connect(tmp_path / "log.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def check_rows(n: int, caller: str | None) -> tuple[CheckRows, list[CheckRecord]]:
    """The same n checks as one batch's columns and as records."""
    checked_at = datetime.now(UTC)
    statuses = [
        orjson.dumps({"a.rule": "pass", "b.rule": ("fail", "pending")[i % 2]}).decode() for i in range(n)
    ]
    rows = CheckRows(
        case_id=[f"ROWS-{i}" for i in range(n)],
        case_sha256=[f"{i:064x}" for i in range(n)],
        verdict=[("fail", "pending")[i % 2] for i in range(n)],
        statuses=statuses,
        as_of=AS_OF,
        ruleset="pack@1",
        calendar="cn@1",
        caller=caller,
        checked_at=checked_at,
    )
    records = [
        CheckRecord(c, h, v, orjson.loads(t), AS_OF, "pack@1", "cn@1", caller, checked_at)
        for c, h, v, t in zip(rows.case_id, rows.case_sha256, rows.verdict, statuses, strict=True)
    ]
    return rows, records


@pytest.mark.parametrize("caller", [None, "alice"])
def test_batch_rows_are_logged_as_records_are(tmp_path: Path, caller: str | None) -> None:
    """A batch's columns (multi-row INSERTs of 500) are logged as its records one by one, in order."""
    rows, records = check_rows(1234, caller)
    for name, write in (("rows", lambda s: s.record_rows(rows)), ("records", lambda s: s.record(records))):
        store = open_store(f"sqlite:///{tmp_path}/{name}.db")
        try:
            write(store)
        finally:
            store.close()
    import sqlite3

    logged = []
    for name in ("rows", "records"):
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            logged.append(db.execute("SELECT * FROM checks ORDER BY id").fetchall())
    assert logged[0] == logged[1]
    assert [row[1] for row in logged[0]] == list(rows.case_id)


def test_batch_checks_are_logged(client: httpx.Client) -> None:
    cases = [
        orjson.loads(line) for line in (SAMPLES / "loan.ndjson").read_bytes().splitlines() if line.strip()
    ]
    for position, case in enumerate(cases):
        case["case_id"] = f"LOAN-BATCH-{position}"
    assert client.post("/v1/check/batch", params={"as_of": AS_OF}, json=cases).status_code == 200
    for position, case in enumerate(cases):
        history = client.get(f"/v1/checks/LOAN-BATCH-{position}").json()["checks"]
        assert [h["case_sha256"] for h in history] == [canonical_sha256(case)]


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL through the same interface
# ---------------------------------------------------------------------------------------------------------

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port, its socket in a temp dir; yields a psycopg URL.

    PostgreSQL refuses to run as root, so as root the cluster is run as ``nobody`` in a world-writable
    temporary directory (pytest's tmp_path sits under a root-only directory that nobody cannot enter).
    """
    bindir = Path(INITDB[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="casecheck-pg-"))
    os.chmod(base, 0o777)
    data, port = base / "data", free_port()
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    user = "nobody" if os.geteuid() == 0 else None

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, cwd=base)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-E", "UTF8", "--no-instructions")
        options = f"-p {port} -k {base} -c listen_addresses=''"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "pg.log"), "-w", "start")
        try:
            who = f"{user}@" if user else ""
            yield f"postgresql://{who}/postgres?host={base}&port={port}"
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(
    not INITDB, reason="PostgreSQL server binaries not installed (apt-get install postgresql)"
)
def test_postgres_store(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'casecheck[postgres]')")
    with postgres_server() as url:
        case = orjson.loads((SAMPLES / "deregistration.ndjson").read_bytes().splitlines()[0])
        with running(tmp_path, url) as live:
            response = httpx.post(f"{live.url}/v1/check", params={"as_of": AS_OF}, json=case, timeout=30)
            assert response.status_code == 200
            assert httpx.get(f"{live.url}/healthz", timeout=30).json()["store"] == "postgresql"
        with running(tmp_path, url) as live:  # a restart finds the record
            history = httpx.get(f"{live.url}/v1/checks/{case['case_id']}", timeout=30).json()["checks"]
        assert len(history) == 1
        assert history[0]["case_sha256"] == canonical_sha256(case)
        assert history[0]["verdict"] == response.json()["verdict"]
        assert history[0]["as_of"] == AS_OF
        store = open_store(url)
        try:
            assert store.history(case["case_id"])[0]["statuses"] == {
                r["rule"]: r["status"] for r in response.json()["results"]
            }
            rows, records = check_rows(3, "bob")
            store.record_rows(rows)
            logged = [store.history(case_id) for case_id in rows.case_id]
            assert [entry["statuses"] for [entry] in logged] == [r.statuses for r in records]
            assert [(e["verdict"], e["caller"], e["as_of"]) for [e] in logged] == [
                (r.verdict, "bob", AS_OF) for r in records
            ]
            assert_history_by_caller(store)
        finally:
            store.close()


def assert_history_by_caller(store: Store) -> None:
    """A history asked for one caller holds that caller's checks only, in order, on either database."""
    for caller in ("alice", "bob", "alice"):
        rows, _ = check_rows(1, caller)
        store.record_rows(dataclasses.replace(rows, case_id=["SHARED-CASE"]))
    assert [e["caller"] for e in store.history("SHARED-CASE")] == ["alice", "bob", "alice"]
    assert [e["caller"] for e in store.history("SHARED-CASE", caller="alice")] == ["alice", "alice"]
    assert [e["caller"] for e in store.history("SHARED-CASE", caller="bob")] == ["bob"]
    assert store.history("SHARED-CASE", caller="nobody") == []


def test_sqlite_history_by_caller(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/v.db")
    try:
        assert_history_by_caller(store)
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------------------
# Fuzzing against the live server's OpenAPI document
# ---------------------------------------------------------------------------------------------------------


# schemathesis' own pytest integration (``schemathesis.pytest.from_fixture``) fails on pytest 9
# (``Function._nodeid``), so each operation's hypothesis strategy is driven here directly.
OPERATIONS = sorted(
    [
        ("POST", "/v1/check"),
        ("POST", "/v1/check/batch"),
        ("GET", "/v1/checks/{case_id}"),
        ("GET", "/v1/rules"),
        ("GET", "/v1/rules/{rule_id}"),
        ("GET", "/v1/calendar/working-days"),
        ("GET", "/v1/calendar/deadline"),
        ("GET", "/healthz"),
    ]
)


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_errors(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    fuzz()


def test_worker_factory_freezes_start_up_state_and_widens_the_young_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from engine.api.app import GC_YOUNG_THRESHOLD, app_from_env
    from engine.api.settings import ENV_STORE

    monkeypatch.setenv(ENV_STORE, f"sqlite:///{tmp_path / 'log.db'}")
    threshold = gc.get_threshold()
    try:
        app_from_env()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_slow_clients_are_cut_off_while_checks_go_on(tmp_path: Path) -> None:
    """Clients that trickle their headers (slowloris) or never finish a body used to hold their
    connections for ever; with a 1 s client timeout they are closed (headers) or answered 408 (body)."""
    raw = (SAMPLES / "water_connection.ndjson").read_bytes().splitlines()[0]
    with running(tmp_path, f"sqlite:///{tmp_path}/v.db", client_timeout=1.0) as live:
        port = int(live.url.rsplit(":", 1)[1])
        trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        for sock in trickling:
            sock.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\n")
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b'POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"case_id"')
        started = time.monotonic()
        answered = 0
        with httpx.Client(base_url=live.url, timeout=10) as http:
            while time.monotonic() - started < 2.5:
                for sock in trickling:
                    with contextlib.suppress(OSError):
                        sock.send(b"X")  # one more header byte, never a whole line
                assert http.post("/v1/check", content=raw, params={"as_of": AS_OF}).status_code == 200
                answered += 1
                time.sleep(0.2)
        assert answered >= 5
        for sock in trickling:
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):  # closed by the server, one way or the other
                assert sock.recv(1024) == b""
            sock.close()
        stalled.settimeout(5)
        answer = stalled.recv(4096)
        stalled.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
