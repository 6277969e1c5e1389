"""`casecheck scan`: every input format, errors with their lines, outputs that add up, aggregates by hand."""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Engine
from engine.cases import validate_case
from engine.chunks import failed_rules
from engine.errors import RulePackError
from engine.generate import generate_cases, write_cases
from engine.reading import input_files
from engine.scan import Scanner, SeenCaseIds, read_ahead

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "cases" / "samples"
CASECHECK = Path(sys.executable).parent / "casecheck"
AS_OF = "2026-11-24"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(executor="columnar")


def run_scan(engine: Engine, paths: list[Path], out: Path, **options: object) -> dict:
    return Scanner(engine, out, AS_OF, **options).scan(input_files(paths))  # type: ignore[arg-type]


def test_samples_scan_adds_up_and_matches_single_checks(engine: Engine, tmp_path: Path) -> None:
    summary = run_scan(engine, [SAMPLES], tmp_path)
    assert summary["input"] == summary["verdicts"] + summary["errors"]
    assert summary["errors"] == 2  # the two broken lines of mixed_with_errors.ndjson
    errors = [orjson.loads(line) for line in (tmp_path / "errors.jsonl").read_bytes().splitlines()]
    assert {(Path(e["file"]).name, e["line"], e["path"]) for e in errors} == {
        ("mixed_with_errors.ndjson", 2, "$"),
        ("mixed_with_errors.ndjson", 4, "external_works_m"),
    }
    verdicts = pl.read_parquet(tmp_path / "verdicts.parquet")
    results = pl.read_parquet(tmp_path / "results.parquet")
    assert verdicts.height == summary["verdicts"]
    # The scan's column-wise roll-up and results must equal the row-wise single checks.
    cases = []
    for path in sorted(SAMPLES.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            try:
                cases.append(validate_case(orjson.loads(line)))
            except (orjson.JSONDecodeError, ValueError):
                continue
    single = Engine.load().check_many(cases, AS_OF)
    assert dict(zip(verdicts["case_id"], verdicts["verdict"], strict=True)) == {
        v["case_id"]: v["verdict"] for v in single
    }
    scanned = {(c, r): s for c, r, s in results.select("case_id", "rule", "status").iter_rows()}
    assert scanned == {(v["case_id"], r["rule"]): r["status"] for v in single for r in v["results"]}
    counts = summary["rules"]["water.no_external.2wd"]
    assert sum(counts.values()) == sum(1 for v in single if v["kind"] == "water_connection")


def _to_csv(records: list[dict], path: Path) -> None:
    """Flat CSV as systems export it: nested objects as dotted columns, lists as JSON text."""
    rows = []
    for record in records:
        row: dict[str, object] = {}
        for key, value in record.items():
            if isinstance(value, dict):
                row.update({f"{key}.{k}": v for k, v in value.items()})
            elif isinstance(value, list):
                row[key] = orjson.dumps(value).decode()
            else:
                row[key] = "true" if value is True else "false" if value is False else value
        rows.append(row)
    columns = sorted({key for row in rows for key in row})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def test_every_format_gives_the_same_verdicts(engine: Engine, tmp_path: Path) -> None:
    records = list(generate_cases(1500, seed=5))
    write_cases(records, tmp_path / "in.ndjson")
    write_cases(records, tmp_path / "in.parquet")
    (tmp_path / "in.json").write_bytes(orjson.dumps(records))
    _to_csv(records, tmp_path / "in.csv")
    outcomes = {}
    for form in ("ndjson", "parquet", "json", "csv"):
        out = tmp_path / f"out-{form}"
        summary = run_scan(engine, [tmp_path / f"in.{form}"], out)
        assert summary["errors"] == 0, (out / "errors.jsonl").read_text()
        frame = pl.read_parquet(out / "verdicts.parquet").sort("case_id")
        outcomes[form] = (frame["case_id"].to_list(), frame["verdict"].to_list(), summary["aggregates"])
    assert outcomes["parquet"] == outcomes["ndjson"]
    assert outcomes["json"] == outcomes["ndjson"]
    assert outcomes["csv"] == outcomes["ndjson"]


def test_durable_and_columnar_scans_agree(tmp_path: Path) -> None:
    write_cases(generate_cases(1000, seed=9), tmp_path / "in.ndjson")
    columnar = run_scan(Engine.load(executor="columnar"), [tmp_path / "in.ndjson"], tmp_path / "c")
    durable = run_scan(Engine.load(executor="durable"), [tmp_path / "in.ndjson"], tmp_path / "d")
    for key in ("verdict_counts", "rules", "aggregates"):
        assert columnar[key] == durable[key]
    left = pl.read_parquet(tmp_path / "c" / "results.parquet")
    right = pl.read_parquet(tmp_path / "d" / "results.parquet")
    assert left.equals(right)


def _loan(case_id: str, applied: str, decided: str | None, district: str = "海曙区") -> dict:
    case = {
        "case_id": case_id,
        "kind": "loan",
        "district": district,
        "applied_at": applied,
        "steps": 2,
        "materials": 3,
    }
    if decided:
        case["decided_at"] = decided
    return case


def test_duplicates_and_aggregates_by_hand(engine: Engine, tmp_path: Path) -> None:
    # March 2026: applied Mon 03-02; decided after 1, 2, 3, 2, 2 working days → mean 2.0 ≤ 2: pass.
    march = [
        _loan("L-1", "2026-03-02", "2026-03-03"),
        _loan("L-2", "2026-03-02", "2026-03-04"),
        _loan("L-3", "2026-03-02", "2026-03-05"),
        _loan("L-4", "2026-03-06", "2026-03-10"),  # Fri → Tue: 9, 10
        _loan("L-5", "2026-03-06", "2026-03-10"),
        _loan("L-6", "2026-03-09", None),  # open: counted, not averaged
    ]
    # April 2026: four decided cases only → insufficient data; mean 3 would fail.
    april = [_loan(f"L-A{i}", "2026-04-06", "2026-04-09") for i in range(4)]
    duplicate = _loan("L-1", "2026-03-02", "2026-03-20")
    (tmp_path / "in.ndjson").write_bytes(
        b"".join(orjson.dumps(c) + b"\n" for c in [*march, *april, duplicate])
    )
    summary = run_scan(engine, [tmp_path / "in.ndjson"], tmp_path / "out")
    assert summary["input"] == 11 and summary["verdicts"] == 10 and summary["errors"] == 1
    error = orjson.loads((tmp_path / "out" / "errors.jsonl").read_bytes())
    assert (error["line"], error["case_id"], error["path"]) == (11, "L-1", "case_id")
    assert "duplicate" in error["message"]
    average = {(a["period"]): a for a in summary["aggregates"] if a["rule"] == "loan.avg_2wd"}
    assert average["2026-03"]["n"] == 5
    assert average["2026-03"]["open"] == 1
    assert average["2026-03"]["value"] == 2.0
    assert average["2026-03"]["status"] == "pass"
    assert average["2026-04"]["n"] == 4
    assert average["2026-04"]["status"] == "insufficient_data"
    steps = {a["period"]: a for a in summary["aggregates"] if a["rule"] == "loan.avg_steps"}
    assert steps["2026-03"]["n"] == 6 and steps["2026-03"]["value"] == 2.0


def test_grouping_by_district_and_quarter(engine: Engine, tmp_path: Path) -> None:
    cases = [_loan(f"L-{i}", "2026-01-05", "2026-01-06", "海曙区" if i < 5 else "江北区") for i in range(8)]
    (tmp_path / "in.ndjson").write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in cases))
    summary = run_scan(engine, [tmp_path / "in.ndjson"], tmp_path / "out", period="quarter", by="district")
    groups = {
        (a["period"], a["group"]): a["status"] for a in summary["aggregates"] if a["rule"] == "loan.avg_2wd"
    }
    assert groups == {("2026-Q1", "海曙区"): "pass", ("2026-Q1", "江北区"): "insufficient_data"}


def test_scan_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [CASECHECK, "scan", str(SAMPLES), "--out", str(tmp_path), "--as-of", AS_OF, "--by", "district"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "errors" in done.stdout and "per-case rules" in done.stdout
    for name in ("verdicts.parquet", "results.parquet", "errors.jsonl", "summary.json"):
        assert (tmp_path / name).is_file()
    missing = subprocess.run([CASECHECK, "scan", str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_generate_is_deterministic(tmp_path: Path) -> None:
    first = list(generate_cases(300, seed=42))
    assert first == list(generate_cases(300, seed=42))
    assert first != list(generate_cases(300, seed=43))
    done = subprocess.run(
        [CASECHECK, "generate", "--n", "50", "--seed", "1", "--out", str(tmp_path / "g.parquet")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(tmp_path / "g.parquet").height == 50


@pytest.mark.scale
def test_scan_memory_is_bounded(tmp_path: Path) -> None:
    """Chunks keep memory flat: a scan's peak RSS must not follow the number of cases (CI: 60,000)."""
    write_cases(generate_cases(60_000, seed=2), tmp_path / "big.ndjson")
    done = subprocess.run(
        [CASECHECK, "scan", str(tmp_path / "big.ndjson"), "--out", str(tmp_path / "out"), "--as-of", AS_OF],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mib < 1024, f"peak RSS {peak_mib:.0f} MiB"


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_give_the_same_outputs(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Blocks read here, built and checked in worker processes, merged in input order: identical to one
    process, over chunks of NDJSON, Parquet and a JSON array, with a repeat in a later chunk and a file
    (chunk) per worker and more chunks than workers."""
    from engine import reading

    monkeypatch.setattr(reading, "FRAME_CHUNK", 700)
    monkeypatch.setattr(reading, "CHUNK", 700)
    records = list(generate_cases(3000, seed=21))
    records.insert(1500, records[10])  # a duplicate, found by the reading process across chunks
    (tmp_path / "in.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"{broken\n")
    others = [{**r, "case_id": f"other-{r['case_id']}"} for r in generate_cases(2500, seed=22)]
    write_cases(others[:1600], tmp_path / "in.parquet")
    (tmp_path / "in.json").write_bytes(orjson.dumps([*others[1600:], records[20]]))
    files = input_files([tmp_path / "in.ndjson", tmp_path / "in.parquet", tmp_path / "in.json"])
    one = Scanner(engine, tmp_path / "one", AS_OF, by="district").scan(files)
    many = Scanner(engine, tmp_path / "many", AS_OF, by="district", workers=workers).scan(files)
    assert one == many
    assert one["errors"] == 3  # the broken line and the two repeats
    for name in ("verdicts.parquet", "results.parquet", "errors.jsonl", "summary.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name


def test_a_failure_in_a_worker_process_stops_the_scan_with_its_error(tmp_path: Path) -> None:
    """A worker that cannot start (here: its rule pack is gone) stops the scan with the worker's error,
    instead of leaving the scanning process waiting."""
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(Path(__file__).parents[1] / "rules" / "ningbo-2020", pack)
    engine = Engine.load([str(pack)], None, "columnar")
    shutil.rmtree(pack)
    write_cases(generate_cases(100, seed=1), tmp_path / "in.ndjson")
    with pytest.raises(RulePackError):
        Scanner(engine, tmp_path / "out", AS_OF, workers=2).scan(input_files([tmp_path / "in.ndjson"]))


@given(
    chunks=st.lists(
        st.lists(
            st.one_of(st.sampled_from(["A", "B", "C", "W-1", "W-2"]), st.text(max_size=6), st.none()),
            max_size=30,
        ),
        max_size=12,
    )
)
def test_seen_case_ids_match_a_dict(chunks: list[list[str | None]]) -> None:
    """The hashed runs give the same first-seen answers as a plain dict of every id."""
    seen, reference = SeenCaseIds(), {}
    line = 0
    for chunk in chunks:
        lines = np.arange(line + 1, line + len(chunk) + 1)
        places = [("f.ndjson", int(n)) for n in lines]
        line += len(chunk)
        expected = []
        for case_id, place in zip(chunk, places, strict=True):
            if not isinstance(case_id, str):
                expected.append(None)
            elif case_id in reference:
                expected.append(reference[case_id])
            else:
                reference[case_id] = place
                expected.append(None)
        assert seen.first_seen(chunk, "f.ndjson", lines) == expected


def test_failed_rules_lists_each_cases_failures_in_rule_order() -> None:
    fails = np.array([[False, True, True], [False, False, False], [True, False, False]])
    assert failed_rules(fails, ["a", "b", "c"]).to_list() == [["b", "c"], [], ["a"]]
    assert failed_rules(np.zeros((2, 0), bool), []).to_list() == [[], []]


def test_read_ahead_keeps_order_and_passes_on_a_failure() -> None:
    """Chunks are read in a thread: the scan must still see them in input order, and a file that fails
    half-way must stop the scan with its error, not end it quietly."""
    produced: list[int] = []

    def chunks() -> Iterator[int]:
        for i in range(5):
            produced.append(i)
            yield i
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(chunks()):
            assert len(produced) <= item + 2  # at most one chunk read ahead
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
