"""`casecheck scan --executor spark` (issue 16): the scan on Apache Spark in local mode gives what the local
scan gives — verdicts, results, errors, summary counts and aggregates — however the data is partitioned.

One Spark session (``local[2]``, UI off) serves the module. The expected outputs are the local scan's,
computed here by the local scanner on the same files: the property under test is that the two agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine import Engine
from engine.cases import validate_case
from engine.generate import generate_cases, write_cases
from engine.scan import Scanner
from engine.spark import case_schema, read_cases, scan_dataframe, spark_session

SAMPLES = Path(__file__).parent.parent / "cases" / "samples"
AS_OF = date(2026, 11, 24)
GENERATED = 50_000


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", "casecheck-tests")
    session.sparkContext.setLogLevel("ERROR")
    session.conf.set("spark.sql.adaptive.enabled", "false")  # partitions exactly as asked
    yield session
    session.stop()


def broken_lines() -> bytes:
    """Truncated JSON, wrong types, a blank line, a repeat within the file and one of a sample's id."""
    sample = orjson.loads((SAMPLES / "water_connection.ndjson").read_bytes().splitlines()[0])
    wrong = {**sample, "case_id": "BROKEN-TYPES", "steps": "many", "applied_at": "soon"}
    first = {**sample, "case_id": "BROKEN-TWICE"}
    lines = [
        b'{"case_id": "BROKEN-TRUNC", "kind": "water_conn',
        orjson.dumps(wrong),
        b"",
        orjson.dumps(first),
        orjson.dumps({**first, "materials": -1}),  # repeated, and wrong besides
        orjson.dumps(sample),  # repeats the sample file's first case
        b"[1, 2]",
    ]
    return b"\n".join(lines) + b"\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("spark-input")
    generated = folder / "generated.ndjson"
    write_cases(generate_cases(GENERATED, 7), generated)
    broken = folder / "broken.jsonl"
    broken.write_bytes(broken_lines())
    return [*sorted(SAMPLES.glob("*.ndjson")), generated, broken]


def local_scan(
    files: list[Path], out: Path
) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    summary = Scanner(Engine.load(executor="columnar"), out, AS_OF, "quarter", "district").scan(files)
    errors = pl.DataFrame(
        [orjson.loads(line) for line in (out / "errors.jsonl").read_bytes().splitlines()],
        schema={
            "file": pl.String,
            "line": pl.Int64,
            "case_id": pl.String,
            "path": pl.String,
            "message": pl.String,
        },
    )
    return (
        summary,
        pl.read_parquet(out / "verdicts.parquet"),
        pl.read_parquet(out / "results.parquet"),
        errors,
    )


@pytest.fixture(scope="module")
def local(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return local_scan(inputs, tmp_path_factory.mktemp("local-scan"))


def assert_same(scan: Any, expected: Any) -> None:
    summary, verdicts, results, errors = expected
    got = {
        "verdicts": pl.from_arrow(scan.verdicts.toArrow()),
        "results": pl.from_arrow(scan.results.toArrow()),
        "errors": pl.from_arrow(scan.errors.toArrow()),
    }
    for name, frame, keys in (
        ("verdicts", verdicts, ["case_id"]),
        ("results", results, ["case_id", "rule"]),
        ("errors", errors, ["file", "line", "path", "message"]),
    ):
        mine = got[name].select(frame.columns).cast(dict(frame.schema))  # type: ignore[arg-type]
        assert_frame_equal(mine.sort(keys), frame.sort(keys), check_dtypes=True)
    assert scan.summary == summary


def test_spark_scan_equals_the_local_scan(spark: Any, inputs: list[Path], local: Any) -> None:
    summary = local[0]
    assert summary["errors"] >= 6 and summary["verdicts"] > GENERATED  # the broken lines are in there
    assert any(a["group"] for a in summary["aggregates"])  # per district
    assert_same(scan_dataframe(read_cases(spark, inputs), AS_OF, "quarter", "district"), local)


@pytest.mark.parametrize("partitions", [1, 2, 7])
def test_results_do_not_depend_on_the_partitions(
    spark: Any, tmp_path: Path, partitions: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.getbasetemp() / "partitions-input"
    if not folder.exists():
        folder.mkdir()
        write_cases(generate_cases(3_000, 11), folder / "generated.ndjson")
        (folder / "broken.ndjson").write_bytes(broken_lines())
    files = [*sorted(SAMPLES.glob("*.ndjson")), folder / "generated.ndjson", folder / "broken.ndjson"]
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    try:
        scan = scan_dataframe(read_cases(spark, files), AS_OF, "quarter", "district")
        assert scan.verdicts.rdd.getNumPartitions() == partitions
        assert_same(scan, local_scan(files, tmp_path / "local"))
        scan.release()  # else the next run finds these checks in Spark's cache, cut as they were
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")


def test_parquet_input_with_rows_for_lines(spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "cases.parquet"
    write_cases(generate_cases(2_000, 3), source)
    scan = scan_dataframe(read_cases(spark, [source]), AS_OF, "quarter", "district")
    assert_same(scan, local_scan([source], tmp_path / "local"))


def test_a_dataframe_read_with_case_schema(spark: Any) -> None:
    schema = case_schema()
    names = {f.name: f.dataType.simpleString() for f in schema.fields}
    assert names["approval"].startswith("struct<") and names["pauses"].startswith("array<struct<")
    frame = spark.read.schema(schema).json(str(SAMPLES / "water_connection.ndjson"))
    scan = scan_dataframe(frame, AS_OF)
    lines = (SAMPLES / "water_connection.ndjson").read_bytes().splitlines()
    expected = Engine.load(executor="columnar").check_many(
        [validate_case(orjson.loads(x)) for x in lines], AS_OF
    )
    verdicts = {row["case_id"]: row["verdict"] for row in scan.verdicts.collect()}
    assert verdicts == {v["case_id"]: v["verdict"] for v in expected}
