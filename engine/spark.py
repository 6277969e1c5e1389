"""casecheck on Apache Spark: the local scan's pipeline inside ``DataFrame.mapInArrow``.

Each Arrow batch of case records goes through what a local scan runs on a chunk: the readers' column
checks (``engine.ingest``), the measures and the columnar executor (``engine.chunks.ChunkChecker``). Spark
adds what one machine cannot: the partitions, the duplicate ids found by a grouped window over the whole
input, and the aggregates' partial sums combined by group. Nothing of the case data is collected to the
driver: only per-split line counts, the summary's counts and the aggregate groups.

Records arrive in one of two forms. NDJSON files are read as text lines (``read_cases``), numbered by a
first pass that counts each split's lines, and decoded by the local NDJSON reader, so every value, error
and line number is the local scan's. A typed DataFrame (Parquet, a Hive table, JSON read with
``case_schema()``) goes through the local Parquet reader's conversion; Spark knows its file and row for
Parquet files, and numbers the rows of other sources itself.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from engine.aggregates import AggregateAccumulator
from engine.chunks import RESULTS_SCHEMA, VERDICTS_SCHEMA, ChunkChecker, without_repeats
from engine.core import Engine, Setup
from engine.domain import TIME_ZONE, Period
from engine.errors import CalendarRangeError, RecordError, SparkInputError
from engine.ingest import frame_schema
from engine.reading import Block
from engine.scan import ScanTotals, scan_summary

__all__ = [
    "SparkInput",
    "SparkInputError",
    "SparkScan",
    "case_schema",
    "read_cases",
    "scan_dataframe",
    "spark_session",
    "write_scan",
]

# Columns the scan adds to the records: where each came from, and the first place of a repeated case_id.
FILE, LINE, FIRST_AT, TEXT = "_file", "_line", "_first_at", "value"
REQUIRED = ("case_id", "kind")  # every case model requires them; without them nothing can be judged


def _spark_type(dtype: pl.DataType) -> T.DataType:
    if isinstance(dtype, pl.Struct):
        return T.StructType([T.StructField(f.name, _spark_type(f.dtype)) for f in dtype.fields])
    if isinstance(dtype, pl.List):
        return T.ArrayType(_spark_type(dtype.inner))
    if dtype == pl.String:
        return T.StringType()
    if dtype == pl.Date:
        return T.DateType()
    if dtype == pl.Int64:
        return T.LongType()
    if dtype == pl.Float64:
        return T.DoubleType()
    raise TypeError(f"no Spark type for {dtype}")


def case_schema() -> T.StructType:
    """The case records' schema for Spark: every field of every kind, scalars as the text the models read
    (so a reader keeps values as written), ``approval`` a struct, ``pauses`` and ``exemptions`` arrays of
    structs. Read JSON lines with it: ``spark.read.schema(case_schema()).json(path)``."""
    return T.StructType([T.StructField(name, _spark_type(dtype)) for name, dtype in frame_schema().items()])


_AGGREGATE = {"rule": pl.String, "period": pl.String, "group": pl.String}
_SUMS = ("scope", "counted", "total", "open")
_ERROR = {"path": pl.String, "message": pl.String}
# One output for all four parts (a verdict, a result, an error, an aggregate group's partial sums), told
# apart by ``part``; shared names have one type in every part.
OUTPUT = {
    "part": pl.String,
    **VERDICTS_SCHEMA,
    **RESULTS_SCHEMA,
    **_ERROR,
    **_AGGREGATE,
    **dict.fromkeys(_SUMS, pl.Float64),
}


def _output_schema() -> T.StructType:
    return T.StructType([T.StructField(name, _spark_type(dtype)) for name, dtype in OUTPUT.items()])


@functools.cache
def _arrow_output() -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(_output_schema())


@dataclass(frozen=True)
class _Job:
    """What a partition needs to check its records: picklable, sent to every executor."""

    setup: Setup
    as_of: date
    period: Period
    by: str | None
    text: bool
    # NDJSON: the first line number of each split, by (file, split start); names as the user gave them.
    first_lines: dict[tuple[str, int], int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


@functools.cache
def _checker(setup: Setup, as_of: date, period: Period, by: str | None) -> ChunkChecker:
    """One checker per executor process and job: loading the pack and calendar costs more than a batch."""
    return ChunkChecker(Engine.load(setup.packs, setup.overlay, "columnar"), as_of, period, by)


def _check_partition(job: _Job) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        checker = _checker(job.setup, job.as_of, job.period, job.by)
        for batch in batches:
            table = pa.Table.from_batches([batch])
            files = table.column(FILE).to_pylist()
            # Rows of one file at a time, in the order they came: the readers take one file's rows.
            start = 0
            for name, run_ in itertools.groupby(files):
                n = len(list(run_))
                part = table.slice(start, n)
                start += n
                yield from _checked(checker, job, name, part)

    return run


def _checked(checker: ChunkChecker, job: _Job, name: str, part: pa.Table) -> Iterator[pa.RecordBatch]:
    lines = np.asarray(part.column(LINE).to_numpy(zero_copy_only=False), np.int64)
    firsts_at = part.column(FIRST_AT).to_pylist()
    if job.text:
        texts = [(text or "").encode() + b"\n" for text in part.column(TEXT).to_pylist()]
        if lines[0] == 1:  # a file's first line, where a byte order mark may be
            texts[0] = texts[0].removeprefix(codecs.BOM_UTF8)
        chunk = Block(name, texts, lines).frame()
    else:
        chunk = Block(name, part.drop_columns([FILE, LINE, FIRST_AT]), lines).frame()
    outcome_errors: list[RecordError] = []
    if any(first is not None for first in firsts_at):
        # The frame's rows first, then its records (``case_ids`` order); each row found by its line.
        at_line = dict(zip(lines.tolist(), firsts_at, strict=True))
        order = chunk.line_numbers().tolist()
        chunk, outcome_errors = without_repeats(chunk, [_place(at_line[line]) for line in order])
    outcome = checker.check(chunk)
    errors = [*outcome_errors, *outcome.errors]
    tables = [_tagged("verdict", t) for t in outcome.verdicts] + [
        _tagged("result", t) for t in outcome.results
    ]
    if errors:
        tables.append(
            _tagged(
                "error",
                pa.table(
                    {
                        "file": [e.file for e in errors],
                        "line": pa.array([e.line for e in errors], pa.int64()),
                        "case_id": [e.case_id for e in errors],
                        "path": [e.path for e in errors],
                        "message": [e.message for e in errors],
                    }
                ),
            )
        )
    if outcome.aggregates:
        keys, sums = zip(*outcome.aggregates.items(), strict=True)
        columns: dict[str, Any] = {
            "rule": [k[0] for k in keys],
            "period": [k[1] for k in keys],
            "group": [k[2] for k in keys],
        }
        columns |= {name: [float(s[i]) for s in sums] for i, name in enumerate(_SUMS)}
        tables.append(_tagged("aggregate", pa.table(columns)))
    for table in tables:
        yield from table.to_batches()


def _place(first_at: str | None) -> tuple[str, int] | None:
    if first_at is None:
        return None
    name, _, line = first_at.rpartition(":")
    return name, int(line)


def _tagged(part: str, table: pa.Table) -> pa.Table:
    """A part's rows in the one output schema: its own columns, the others null."""
    schema = _arrow_output()
    n = table.num_rows
    columns = []
    for column in schema:
        if column.name == "part":
            columns.append(pa.array([part] * n, column.type))
        elif column.name in table.column_names:
            columns.append(table.column(column.name).cast(column.type))
        else:
            columns.append(pa.nulls(n, column.type))
    return pa.Table.from_arrays(columns, schema=schema)


# ---------------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SparkInput:
    """Records with their location columns, and how the partitions must read them."""

    frame: DataFrame
    text: bool
    first_lines: dict[tuple[str, int], int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


def read_cases(spark: SparkSession, paths: Sequence[Path]) -> SparkInput:
    """The records of NDJSON/JSONL files (plain or gzipped) or of Parquet files, with file and line (or
    row) as the local scan names them; all files must be of one of the two forms."""
    forms = {_form(path) for path in paths}
    if len(forms) != 1:
        raise SparkInputError(
            "a Spark scan reads either NDJSON/JSONL files or Parquet files, not both at once"
        )
    uris = [path.resolve().as_uri() for path in paths]
    # Spark names a local file file:/a/b where Path.as_uri says file:///a/b.
    names = {f"file:{path.resolve()}": str(path) for path in paths}
    if forms == {"parquet"}:
        frame = spark.read.parquet(*uris).select(
            "*",
            F.col("_metadata.file_path").alias(FILE),
            (F.col("_metadata.row_index") + 1).alias(LINE),
        )
        return SparkInput(frame, text=False, names=names)
    lines = spark.read.text(uris).select(
        TEXT, F.col("_metadata.file_path").alias(FILE), F.col("_metadata.file_block_start").alias("_start")
    )
    # The lines of each split, counted where they are, give each split its first line number.
    counts = sorted(
        (row[FILE], row["_start"], row["count"]) for row in lines.groupBy(FILE, "_start").count().collect()
    )
    first_lines: dict[tuple[str, int], int] = {}
    for file, splits in itertools.groupby(counts, key=lambda item: item[0]):
        line = 1
        for _, start, count in splits:
            first_lines[(file, start)] = line
            line += count
    numbered = lines.mapInArrow(_numbered(first_lines), f"{TEXT} string, {FILE} string, {LINE} long")
    return SparkInput(numbered, text=True, first_lines=first_lines, names=names)


def _form(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    if suffixes[-1:] in ([".ndjson"], [".jsonl"]):
        return "ndjson"
    if suffixes[-1:] == [".parquet"]:
        return "parquet"
    raise SparkInputError(f"{path}: a Spark scan reads .ndjson, .jsonl (plain or .gz) and .parquet files")


def _numbered(first_lines: dict[tuple[str, int], int]) -> Callable[[Iterator[pa.RecordBatch]], Any]:
    """Line numbers for text rows, which arrive split by split and in order within a split."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        seen: dict[tuple[str, int], int] = {}
        for batch in batches:
            files = batch.column(FILE).to_pylist()
            starts = batch.column("_start").to_pylist()
            numbers = []
            for key in zip(files, starts, strict=True):
                offset = seen.get(key, 0)
                numbers.append(first_lines[key] + offset)
                seen[key] = offset + 1
            yield pa.RecordBatch.from_arrays(
                [batch.column(TEXT), batch.column(FILE), pa.array(numbers, pa.int64())], [TEXT, FILE, LINE]
            )

    return run


# ---------------------------------------------------------------------------------------------------------
# The scan
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SparkScan:
    """The scan's outputs: verdicts, results and errors as DataFrames, the summary as the local one."""

    verdicts: DataFrame
    results: DataFrame
    errors: DataFrame
    summary: dict[str, Any]
    checked: DataFrame  # the cached output the three are read from

    def release(self) -> None:
        """Drop the cached checks from the executors' memory (after the outputs are written)."""
        self.checked.unpersist()


def scan_dataframe(
    cases: DataFrame | SparkInput,
    as_of: date,
    period: Period = "month",
    by: str | None = None,
    setup: Setup | None = None,
) -> SparkScan:
    """Scan case records on Spark: a typed DataFrame (its columns named as the case fields; ``_file`` and
    ``_line`` if it has them), or what ``read_cases`` read. Refused before any job when a column every
    case needs is missing."""
    source = cases if isinstance(cases, SparkInput) else _typed(cases)
    setup = setup or Setup()
    engine = Engine.load(setup.packs, setup.overlay, "columnar")
    if as_of < engine.calendar.first:  # before every case, as the local scan refuses it
        raise CalendarRangeError(as_of.year, engine.calendar.covered)
    frame = source.frame
    if not source.text:
        missing = [name for name in REQUIRED if name not in frame.columns]
        if missing:
            raise SparkInputError(f"the input has no column {', '.join(missing)}: every case record needs it")
    frame = _names(frame, source.names)
    frame = _with_repeats(frame, source.text, source.names)
    job = _Job(setup, as_of, period, by, source.text, source.first_lines, source.names)
    out = frame.mapInArrow(_check_partition(job), _output_schema()).cache()
    verdicts = out.filter(F.col("part") == "verdict").select(*VERDICTS_SCHEMA)
    results = out.filter(F.col("part") == "result").select(*RESULTS_SCHEMA)
    errors = out.filter(F.col("part") == "error").select("file", "line", "case_id", *_ERROR)
    summary = _summary(engine, out, verdicts, results, errors, as_of, period, by)
    return SparkScan(verdicts, results, errors, summary, out)


def _typed(frame: DataFrame) -> SparkInput:
    """A DataFrame of records: its own ``_file``/``_line`` where it has them, else Spark's row ids."""
    if FILE not in frame.columns:
        frame = frame.withColumn(FILE, F.lit("<dataframe>"))
    if LINE not in frame.columns:
        frame = frame.withColumn(LINE, F.monotonically_increasing_id() + 1)
    return SparkInput(frame, text=False)


def _names(frame: DataFrame, names: dict[str, str]) -> DataFrame:
    """Files named as the user gave them (Spark knows them as absolute URIs)."""
    if not names:
        return frame
    mapping = F.create_map(*[F.lit(x) for pair in names.items() for x in pair])  # Spark's name → the user's
    return frame.withColumn(FILE, F.coalesce(mapping[F.col(FILE)], F.col(FILE)))


def _with_repeats(frame: DataFrame, text: bool, names: dict[str, str]) -> DataFrame:
    """``_first_at`` (file:line of its first record) on every record that repeats an earlier case_id, as
    the local scan finds them: earlier means an earlier file in the input's order, or an earlier line."""
    case_id = F.get_json_object(F.col(TEXT), "$.case_id") if text else F.col("case_id").cast("string")
    order = list(names.values())
    rank = F.array_position(F.array(*[F.lit(n) for n in order]), F.col(FILE)) if order else F.lit(0)
    window = Window.partitionBy("_id").orderBy("_rank", LINE)
    place = F.concat_ws(":", F.col(FILE), F.col(LINE).cast("string"))
    marked = (
        frame.withColumn("_id", case_id)
        .withColumn("_rank", rank)
        .withColumn("_n", F.row_number().over(window))
        .withColumn("_first", F.first(place).over(window))
    )
    first_at = F.when(F.col("_id").isNotNull() & (F.col("_n") > 1), F.col("_first"))
    return marked.withColumn(FIRST_AT, first_at).drop("_id", "_rank", "_n", "_first")


def _summary(
    engine: Engine,
    out: DataFrame,
    verdicts: DataFrame,
    results: DataFrame,
    errors: DataFrame,
    as_of: date,
    period: Period,
    by: str | None,
) -> dict[str, Any]:
    """The local scan's summary, from counts Spark computes (a record with several problems counts once)."""
    totals = ScanTotals()
    for row in verdicts.groupBy("verdict").count().collect():
        totals.verdict_counts[row["verdict"]] = row["count"]
    totals.verdicts = sum(totals.verdict_counts.values())
    for row in results.groupBy("rule", "status").count().collect():
        totals.rule_counts.setdefault(row["rule"], {})[row["status"]] = row["count"]
    totals.errors = errors.select("file", "line").distinct().count()
    totals.input = totals.verdicts + totals.errors
    aggregates = AggregateAccumulator(engine.pack, engine.calendar, as_of, period, by)
    sums = out.filter(F.col("part") == "aggregate").groupBy("rule", "period", "group")
    for row in sums.agg(*[F.sum(name).alias(name) for name in _SUMS]).collect():
        aggregates.groups[(row["rule"], row["period"], row["group"])] = [row[name] for name in _SUMS]
    return scan_summary(engine, as_of, period, totals, aggregates, [])


def spark_session(master: str = "local[*]", app: str = "casecheck") -> SparkSession:
    """A session for a scan: the UI off, and the executors' Python the one casecheck runs in unless
    ``PYSPARK_PYTHON`` says otherwise (see docs/spark.md for clusters)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", TIME_ZONE)
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master.startswith("local"):  # one machine: a shuffle partition per core, not Spark's 200
        builder = builder.config("spark.sql.shuffle.partitions", str(os.cpu_count() or 1))
    return builder.getOrCreate()


def write_scan(scan: SparkScan, out: Path) -> None:
    """What a local scan writes: verdicts and results as Parquet (folders of part files written by the
    executors), ``errors.jsonl`` in input order (streamed to the driver a partition at a time) and
    ``summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    scan.verdicts.write.mode("overwrite").parquet(str(out / "verdicts.parquet"))
    scan.results.write.mode("overwrite").parquet(str(out / "results.parquet"))
    with (out / "errors.jsonl").open("wb") as errors:
        for row in scan.errors.orderBy("file", "line").toLocalIterator():
            errors.write(orjson.dumps(row.asDict()) + b"\n")
    (out / "summary.json").write_bytes(orjson.dumps(scan.summary, option=orjson.OPT_INDENT_2))
