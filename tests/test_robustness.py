"""One record never sinks the others, and a user error is one line with exit 2 (issue 12).

Everything here goes through the public surfaces: the CLI (typer's runner, in process, so that a test
can inject a failure), the HTTP app (FastAPI's TestClient) and the scan.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import engine.core
from engine.api import Settings, create_app
from engine.cli import app
from tests.builders import AS_OF, water

SAMPLES = Path(__file__).parent.parent / "cases" / "samples"
BOM = b"\xef\xbb\xbf"
runner = CliRunner()


def contract(case_id: str, amount: Any = 1_000_000) -> dict[str, Any]:
    """A tender contract that passes its rules (amounts in CNY)."""
    return {
        "case_id": case_id,
        "kind": "procurement_contract",
        "procurement_method": "tender",
        "category": "goods",
        "contract_amount": amount,
        "bid_deposit": 0,
        "performance_bond": 50_000,
        "performance_period_days": 90,
        "advance_payment": 300_000,
        "contract_effective_at": "2026-03-02",
        "advance_paid_at": "2026-03-17",
        "electronic": True,
        "documents_fee": 0,
    }


def ndjson(records: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def cli(*args: str, stdin: bytes | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    store = tmp_path_factory.mktemp("store") / "verdicts.db"
    with TestClient(create_app(Settings(store=f"sqlite:///{store}"))) as test_client:
        yield test_client


def batch(client: TestClient, records: list[Any]) -> dict[str, Any]:
    answer = client.post(
        "/v1/check/batch",
        params={"as_of": AS_OF},
        content=ndjson(records),
        headers={"content-type": "application/x-ndjson"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def scan(tmp_path: Path, data: bytes, name: str = "in.ndjson", *extra: str) -> tuple[Any, dict[str, Any]]:
    source = tmp_path / name
    source.write_bytes(data)
    out = tmp_path / "out"
    result = cli("scan", str(source), "--out", str(out), "--as-of", AS_OF, *extra)
    summary = orjson.loads((out / "summary.json").read_bytes()) if (out / "summary.json").exists() else {}
    return result, summary


def scan_errors(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_bytes().splitlines()]


# ---------------------------------------------------------------------------------------------------------
# One record must never sink the others
# ---------------------------------------------------------------------------------------------------------

HUGE = [1e17, "1e20", 1e308, "10000000000000"]  # the last: one fen over the largest amount accepted


def huge_batch() -> list[dict[str, Any]]:
    return [contract(f"C-{i}", amount) for i, amount in enumerate(HUGE)] + [
        contract("C-ok", "9999999999999.99")
    ]


def test_huge_amounts_are_refused_at_their_path_in_check(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_bytes(ndjson(huge_batch()))
    result = cli("check", str(source), "--as-of", AS_OF)
    verdicts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [v["case_id"] for v in verdicts] == ["C-ok"]
    lines = result.stderr.splitlines()
    assert len(lines) == len(HUGE)
    # "1e20" is no money text (no exponent in text); the numbers are over the bound.
    assert [line.split(": ", 1)[1] for line in lines] == [
        "contract_amount: must be at most 9999999999999.99",
        "contract_amount: must be a number",
        "contract_amount: must be at most 9999999999999.99",
        "contract_amount: must be at most 9999999999999.99",
    ]


def test_huge_amounts_are_refused_over_http(client: TestClient) -> None:
    single = client.post("/v1/check", params={"as_of": AS_OF}, content=orjson.dumps(contract("C", 1e17)))
    assert single.status_code == 422
    assert single.json()["errors"] == [
        {"path": "contract_amount", "message": "must be at most 9999999999999.99"}
    ]
    answer = batch(client, huge_batch())
    assert [item["ok"] for item in answer["results"]] == [False] * len(HUGE) + [True]
    assert {item["errors"][0]["path"] for item in answer["results"][:-1]} == {"contract_amount"}


@pytest.mark.parametrize("engine_name", ["columnar", "durable"])
def test_huge_amounts_do_not_stop_a_scan(tmp_path: Path, engine_name: str) -> None:
    result, summary = scan(tmp_path, ndjson(huge_batch()), "in.ndjson", "--executor", engine_name)
    assert result.exit_code == 0, result.output
    assert (summary["input"], summary["verdicts"], summary["errors"]) == (5, 1, 4)
    assert {(e["case_id"], e["path"]) for e in scan_errors(tmp_path)} == {
        (f"C-{i}", "contract_amount") for i in range(len(HUGE))
    }


def test_huge_amounts_in_parquet_and_csv_are_refused(tmp_path: Path) -> None:
    """The columnar path (typed Parquet decimals) and pydantic's (CSV) refuse the same amounts."""
    import polars as pl

    rows = [contract("P-big", "10000000000000.00"), contract("P-ok", "9999999999999.99")]
    frame = pl.DataFrame(rows).with_columns(pl.col("contract_amount").cast(pl.Decimal(20, 2)))
    frame.write_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out"
    result = cli("scan", str(tmp_path / "in.parquet"), "--out", str(out), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    errors = [orjson.loads(line) for line in (out / "errors.jsonl").read_bytes().splitlines()]
    assert [(e["case_id"], e["path"]) for e in errors] == [("P-big", "contract_amount")]


def boom_on(case_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make measuring fail for any batch holding ``case_id``: a failure no validation foresaw."""
    real = engine.core.measure_batch

    def measure(pack: Any, batch: Any, *args: Any) -> Any:
        if case_id in batch.case_id.tolist():
            raise RuntimeError("injected failure")
        return real(pack, batch, *args)

    monkeypatch.setattr(engine.core, "measure_batch", measure)  # the one place every path measures


def twenty_with_boom() -> list[dict[str, Any]]:
    return (
        [water(case_id=f"W-{i}") for i in range(10)]
        + [water(case_id="BOOM")]
        + [contract(f"C-{i}") for i in range(9)]
    )


def test_a_failing_record_is_reported_alone_by_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boom_on("BOOM", monkeypatch)
    source = tmp_path / "in.ndjson"
    source.write_bytes(ndjson(twenty_with_boom()))
    result = cli("check", str(source), "--as-of", AS_OF)
    checked = [orjson.loads(line)["case_id"] for line in result.stdout.splitlines()]
    assert checked == [r["case_id"] for r in twenty_with_boom() if r["case_id"] != "BOOM"]
    assert result.stderr.splitlines() == [
        "line 11 (BOOM): $: could not be checked: RuntimeError: injected failure"
    ]


def test_a_failing_record_is_reported_alone_by_the_batch_endpoint(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom_on("BOOM", monkeypatch)
    answer = batch(client, twenty_with_boom())
    assert (answer["count"], answer["checked"], answer["invalid"]) == (20, 19, 1)
    assert [item["ok"] for item in answer["results"]] == [True] * 10 + [False] + [True] * 9
    assert answer["results"][10]["errors"] == [
        {"path": "$", "message": "could not be checked: RuntimeError: injected failure"}
    ]
    assert [item["verdict"]["case_id"] for item in answer["results"] if item["ok"]] == [
        r["case_id"] for r in twenty_with_boom() if r["case_id"] != "BOOM"
    ]


@pytest.mark.parametrize("engine_name", ["columnar", "durable"])
def test_a_failing_record_is_reported_alone_by_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_name: str
) -> None:
    boom_on("BOOM", monkeypatch)
    result, summary = scan(tmp_path, ndjson(twenty_with_boom()), "in.ndjson", "--engine", engine_name)
    assert result.exit_code == 0, result.output
    assert (summary["input"], summary["verdicts"], summary["errors"]) == (20, 19, 1)
    assert scan_errors(tmp_path) == [
        {
            "file": str(tmp_path / "in.ndjson"),
            "line": 11,
            "case_id": "BOOM",
            "path": "$",
            "message": "could not be checked: RuntimeError: injected failure",
        }
    ]


def with_deep(record: dict[str, Any], field: str, levels: int) -> bytes:
    """The record's JSON with ``field`` nested ``levels`` objects deep (written out: orjson stops at 254)."""
    nested = b'{"a":' * levels + b"1" + b"}" * levels
    return orjson.dumps(record)[:-1] + b',"' + field.encode() + b'":' + nested + b"}"


@pytest.mark.parametrize("levels", [65, 254, 1000])
def test_deep_unknown_fields_are_refused_with_their_path(
    client: TestClient, tmp_path: Path, levels: int
) -> None:
    record = with_deep(water(case_id="W-deep"), "extra", levels)
    fine = with_deep(water(case_id="W-fine"), "extra", 63)
    message = "unknown field 'extra' is nested more than 64 levels deep"
    single = client.post("/v1/check", params={"as_of": AS_OF}, content=record)
    assert single.status_code == 422
    assert single.json()["errors"] == [{"path": "$", "message": message}]
    answer = client.post("/v1/check/batch", params={"as_of": AS_OF}, content=record + b"\n" + fine)
    assert [item["ok"] for item in answer.json()["results"]] == [False, True]
    _, summary = scan(tmp_path, record + b"\n" + fine + b"\n")
    assert (summary["verdicts"], summary["errors"]) == (1, 1)
    assert [(e["case_id"], e["message"]) for e in scan_errors(tmp_path)] == [("W-deep", message)]
    checked = cli("check", "-", "--as-of", AS_OF, stdin=record + b"\n" + fine)
    assert checked.stderr.splitlines() == [f"line 1 (W-deep): $: {message}"]


def test_a_deep_field_inside_a_pause_is_named_at_the_pause(client: TestClient) -> None:
    note: Any = 1
    for _ in range(70):
        note = [note]
    pause = {"reason": "other", "start": "2026-03-02", "end": "2026-03-03", "note": note}
    single = client.post("/v1/check", params={"as_of": AS_OF}, content=orjson.dumps(water(pauses=[pause])))
    assert single.status_code == 422
    assert single.json()["errors"] == [
        {"path": "pauses[0]", "message": "unknown field 'note' is nested more than 64 levels deep"}
    ]


def test_a_broken_repeat_is_reported_as_duplicate_and_broken(client: TestClient, tmp_path: Path) -> None:
    records = [water(case_id="W-1"), water(case_id="W-1", steps=0)]
    answer = batch(client, records)
    assert answer["results"][1]["errors"] == [
        {"path": "case_id", "message": "duplicate case_id: already at index 0 (must be unique in a batch)"},
        {"path": "steps", "message": "must be ≥ 1"},
    ]
    scan(tmp_path, ndjson(records))
    source = str(tmp_path / "in.ndjson")
    assert [(e["line"], e["path"], e["message"]) for e in scan_errors(tmp_path)] == [
        (2, "case_id", f"duplicate case_id, first at {source}:1"),
        (2, "steps", "must be ≥ 1"),
    ]


# ---------------------------------------------------------------------------------------------------------
# Errors that look like failures
# ---------------------------------------------------------------------------------------------------------


def one_line_exit_2(result: Any, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


def test_scan_to_an_unwritable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = cli("scan", str(SAMPLES / "water_connection.ndjson"), "--out", str(tmp_path / "file" / "out"))
    one_line_exit_2(result, "--out", "cannot write there")


def test_missing_or_malformed_api_keys(tmp_path: Path) -> None:
    one_line_exit_2(cli("serve", "--api-keys", str(tmp_path / "none")), "--api-keys", "No such file")
    (tmp_path / "keys").write_text("alice:k1\nbob\n")
    one_line_exit_2(cli("serve", "--api-keys", str(tmp_path / "keys")), "keys:2: expected name:key")


def test_relative_overlay_path_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # (Sun 1 Mar, Fri 6 Mar 2026] holds 5 working days; closing Monday 2 March leaves 4.
    Path("closure.toml").write_text('description = "typhoon"\nclosures = [2026-03-02]\n')
    result = cli("calendar", "between", "2026-03-01", "2026-03-06", "--overlay", "closure.toml")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("4 working days")
    one_line_exit_2(cli("calendar", "between", "2026-03-01", "2026-03-06", "--overlay", "no.toml"), "no.toml")


def test_overlay_naming_an_uncovered_year(tmp_path: Path) -> None:
    overlay = tmp_path / "far.toml"
    overlay.write_text('description = "far"\nclosures = [2031-03-03]\n')
    result = cli("calendar", "is-workday", "2026-03-02", "--overlay", str(overlay))
    one_line_exit_2(result, "2031 is not covered")


@pytest.mark.parametrize("command", ["check", "scan"])
def test_as_of_before_the_calendar(tmp_path: Path, command: str) -> None:
    source = str(SAMPLES / "water_connection.ndjson")
    extra = ["--out", str(tmp_path / "out")] if command == "scan" else []
    result = cli(command, source, *extra, "--as-of", "1999-01-01")
    one_line_exit_2(result, "--as-of", "1999 is not covered")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "the input is empty"),
        (b"  \n\t\n", "the input is empty"),
        (b"[]", "the JSON array is empty"),
        (b"\n[ ]\n", "the JSON array is empty"),
    ],
)
def test_empty_input_says_what_was_wrong(data: bytes, why: str) -> None:
    result = cli("check", "-", "--as-of", AS_OF, stdin=data)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"line 1: $: no case records: {why}"]


def test_scan_reads_upper_case_and_gzip_and_names_what_it_skips(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    (folder / "a.NDJSON").write_bytes(ndjson([water(case_id="A")]))
    (folder / "b.ndjson.gz").write_bytes(gzip.compress(ndjson([water(case_id="B")])))
    (folder / "c.JSONL.GZ").write_bytes(gzip.compress(ndjson([water(case_id="C")])))
    header = "case_id,kind,customer_type,applied_at,connected_at,external_works_m,steps,materials\n"
    row = "D,water_connection,non_residential,2026-03-02T09:00:00+08:00,2026-03-03T10:00:00+08:00,0,2,1\n"
    (folder / "d.csv.gz").write_bytes(gzip.compress((header + row).encode()))
    (folder / "e.json.gz").write_bytes(gzip.compress(orjson.dumps([water(case_id="E")])))
    (folder / "notes.txt").write_text("not cases")
    (folder / "f.parquet.gz").write_bytes(b"")
    out = tmp_path / "out"
    result = cli("scan", str(folder), "--out", str(out), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["input"], summary["verdicts"], summary["errors"]) == (5, 5, 0)
    skipped = {Path(entry["file"]).name: entry["reason"] for entry in summary["skipped"]}
    assert set(skipped) == {"notes.txt", "f.parquet.gz"}
    assert "unknown input format" in skipped["notes.txt"]
    assert "gzipped Parquet" in skipped["f.parquet.gz"]
    assert sorted(line.split(":")[0] for line in result.stderr.splitlines()) == [
        f"skipped {folder / 'f.parquet.gz'}",
        f"skipped {folder / 'notes.txt'}",
    ]


def test_scan_of_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("scan", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    one_line_exit_2(result, "no input files")
    (tmp_path / "empty" / "none.ndjson").write_bytes(b"\n \n")
    (tmp_path / "empty" / "none.json").write_bytes(b"[]")
    result = cli("scan", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    one_line_exit_2(result, "no case records")


def test_a_byte_order_mark_is_accepted(client: TestClient, tmp_path: Path) -> None:
    record = orjson.dumps(water())
    result = cli(
        "check", "-", "--as-of", AS_OF, stdin=BOM + record + b"\n" + orjson.dumps(water(case_id="W-2"))
    )
    assert [orjson.loads(line)["case_id"] for line in result.stdout.splitlines()] == ["W-1", "W-2"]
    array = cli("check", "-", "--as-of", AS_OF, stdin=BOM + b"[" + record + b"]")
    assert array.exit_code == 0 and orjson.loads(array.stdout)["case_id"] == "W-1"
    assert client.post("/v1/check", params={"as_of": AS_OF}, content=BOM + record).status_code == 200
    answer = client.post("/v1/check/batch", params={"as_of": AS_OF}, content=BOM + b"[" + record + b"]")
    assert answer.json()["checked"] == 1
    for name, data in (
        ("in.ndjson", BOM + record + b"\n"),
        ("in.json", BOM + b"[" + record + b"]"),
        ("in.csv", BOM + b"case_id,kind\nW-1,water_connection\n"),
    ):
        scan(tmp_path, data, name)
        summary = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
        errors = scan_errors(tmp_path)
        if name == "in.csv":  # a valid header read through the mark: the errors name real fields
            assert {e["path"] for e in errors} >= {"customer_type", "applied_at"}
            assert all(e["case_id"] == "W-1" for e in errors)
        else:
            assert (summary["verdicts"], summary["errors"]) == (1, 0), name


def test_long_values_are_cut_in_messages(client: TestClient, tmp_path: Path) -> None:
    long_id = "x" * 10_000_000
    record = water(case_id=long_id, customer_type="y" * 1_000_000)
    result = cli("check", "-", "--as-of", AS_OF, stdin=orjson.dumps(record))
    assert result.exit_code == 2
    assert len(result.stderr) < 1_000
    assert "case_id: must be at most 128 characters" in result.stderr
    record = water(case_id="x" * 4_000_000, customer_type="y" * 1_000_000)  # within the body limit
    answer = client.post("/v1/check", params={"as_of": AS_OF}, content=orjson.dumps(record))
    assert answer.status_code == 422 and len(answer.content) < 1_000
    in_batch = client.post(
        "/v1/check/batch", params={"as_of": AS_OF}, content=b"[" + orjson.dumps(record) + b"]"
    )
    assert len(in_batch.content) < 1_000
    scan(tmp_path, orjson.dumps(record) + b"\n")
    assert (tmp_path / "out" / "errors.jsonl").stat().st_size < 1_000


def test_an_error_quoting_brackets_is_printed_as_given() -> None:
    """Messages are not read as console markup: ``[/x]`` once raised a markup error (a traceback)."""
    one_line_exit_2(cli("check", "--lang", "[/x]"), "got '[/x]'")


@pytest.mark.parametrize(
    ("amount", "valid"),
    [(1e17, False), ("10000000000000", False), ("9999999999999.99", True), (9999999999999.99, True)],
)
def test_the_exported_schema_holds_the_amount_bound(amount: Any, valid: bool) -> None:
    from jsonschema import Draft202012Validator

    from engine.cases import case_json_schema

    validator = Draft202012Validator(case_json_schema("procurement_contract"))
    assert validator.is_valid(contract("C", amount)) is valid


def test_a_bad_date_argument_is_a_user_error_but_a_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI turns casecheck's own errors into one line and exit 2; a plain ValueError from a bug is
    not dressed up as the user's mistake."""
    bad = cli("calendar", "add", "2026-13-01", "3")
    assert bad.exit_code == 2
    assert "invalid ISO 8601 date" in bad.output and "Traceback" not in bad.output

    import engine.calendar

    def broken(self: Any, day: Any, n: int) -> None:
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(engine.calendar.WorkdayIndex, "add_working_days", broken)
    crashed = cli("calendar", "add", "2026-03-02", "3")
    assert crashed.exit_code == 1
    assert isinstance(crashed.exception, ValueError)
    assert "a bug" in str(crashed.exception)
