"""The HTTP service's package: its public names, a service module free of the web framework, the docs
page shipped as a file, and the error answers its exception handlers give (FastAPI's TestClient, in
process, so that a test can inject a failure)."""

from __future__ import annotations

import ast
import importlib.resources
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import engine.api
import engine.api.service
from engine.api import Settings, create_app

SAMPLE = (Path(__file__).parent.parent / "cases" / "samples" / "water_connection.ndjson").read_bytes()
CASE = SAMPLE.splitlines()[0]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    work = tmp_path_factory.mktemp("api-package")
    keys = work / "keys.txt"
    keys.write_text("alice:alice-secret-1\n", encoding="utf-8")
    return create_app(Settings(store=f"sqlite:///{work}/verdicts.db", api_keys=keys, max_body=1024))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_public_api() -> None:
    assert engine.api.__all__ == ["Settings", "app_from_env", "create_app", "load_api_keys", "serve"]


def test_the_service_does_not_import_the_web_framework() -> None:
    tree = ast.parse(Path(engine.api.service.__file__).read_text(encoding="utf-8"))
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in ("fastapi", "starlette", "uvicorn")}


def test_the_docs_page_is_the_packaged_file(client: TestClient) -> None:
    page = importlib.resources.files("engine.api").joinpath("docs.html").read_text(encoding="utf-8")
    answer = client.get("/docs")
    assert answer.status_code == 200 and answer.text == page
    assert "/openapi.json" in page


def test_error_answers_are_json_with_their_headers(client: TestClient) -> None:
    refused = client.post("/v1/check", content=CASE)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"detail": "a valid API key is required (X-API-Key or Authorization: Bearer)"}
    key = {"X-API-Key": "alice-secret-1"}
    invalid = client.post("/v1/check", content=b"{}", headers=key).json()
    assert invalid["detail"] == "invalid case" and invalid["errors"][0]["path"] == "kind"
    query = client.get("/v1/calendar/deadline", params={"start": "2026-09-30"}, headers=key).json()
    assert query == {
        "detail": "invalid request",
        "errors": [{"path": "query.days", "message": "Field required"}],
    }
    too_big = client.post("/v1/check", content=b" " * 2000, headers=key)
    assert too_big.status_code == 413 and "errors" not in too_big.json()
    assert client.get("/nowhere").json() == {"detail": "Not Found"}
    assert client.delete("/v1/check").json() == {"detail": "Method Not Allowed"}


def test_an_unexpected_error_is_a_short_500_and_logged(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the verdict log is broken")

    monkeypatch.setattr(app.state.service.store, "record", broken)
    with caplog.at_level(logging.ERROR, logger="casecheck.api"):
        answer = client.post(
            "/v1/check", content=CASE, params={"as_of": "2026-11-24"}, headers={"X-API-Key": "alice-secret-1"}
        )
    assert answer.status_code == 500
    assert answer.content == b'{"detail":"internal server error"}'
    assert answer.headers["content-type"] == "application/json"
    assert "verdict log" not in answer.text
    (record,) = [r for r in caplog.records if r.name == "casecheck.api"]
    assert record.getMessage() == "unhandled error on POST /v1/check"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
