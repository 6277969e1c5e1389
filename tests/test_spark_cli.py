"""`casecheck scan --engine spark` from the command line (issue 16): the same files as a local scan, and
an input that cannot be scanned refused in one line before any job. Each run starts and stops its own
Spark session (``local[1]``), so these live apart from ``test_spark``'s shared one."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from engine import Engine
from engine.cli import app
from engine.errors import SparkInputError
from engine.scan import Scanner
from engine.spark import scan_dataframe, spark_session

SAMPLES = Path(__file__).parent.parent / "cases" / "samples"
AS_OF = date(2026, 11, 24)


def spark_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["scan", *args, "--engine", "spark", "--master", "local[1]"])


def test_a_missing_required_column_fails_before_the_job(tmp_path: Path) -> None:
    spark = spark_session("local[1]")
    try:
        frame = spark.createDataFrame([("W-1", "2026-03-02")], "case_id string, applied_at string")
        with pytest.raises(SparkInputError, match="no column kind"):
            scan_dataframe(frame, AS_OF)
    finally:
        spark.stop()
    source = tmp_path / "no-kind.parquet"
    pl.DataFrame({"case_id": ["W-1"], "applied_at": ["2026-03-02"]}).write_parquet(source)
    out = tmp_path / "out"
    run = spark_cli(str(source), "--out", str(out))
    assert run.exit_code == 2, run.output
    assert "no column kind" in run.output
    assert not (out / "verdicts.parquet").exists() and not (out / "summary.json").exists()


def test_cli_writes_what_a_local_scan_writes(tmp_path: Path) -> None:
    files = sorted(SAMPLES.glob("*.ndjson"))[:3]
    out = tmp_path / "spark"
    run = spark_cli(*map(str, files), "--out", str(out), "--as-of", "2026-11-24")
    assert run.exit_code == 0, run.output
    for name in ("verdicts.parquet", "results.parquet", "errors.jsonl", "summary.json", "report.html"):
        assert (out / name).exists(), name
    summary = orjson.loads((out / "summary.json").read_bytes())
    local = Scanner(Engine.load(executor="columnar"), tmp_path / "local", AS_OF).scan(files)
    assert summary == local
    assert f"{summary['input']} cases read" in run.stdout
