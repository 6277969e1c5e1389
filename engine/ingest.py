"""Records as columns: NDJSON and Parquet chunks (``engine.reading``'s blocks) made Polars frames and
validated a column at a time.

pydantic validates one record at a time; at scan scale that costs more than every other stage together
(benchmarks/test_check_bench.py's validate stage against the scan benchmarks). Here a chunk is read into one Polars frame (one schema for every kind, scalars as text)
and each field of each kind is checked with column expressions that accept a *subset* of what the case
models accept and convert it the same way. A row that passes every check becomes part of a ``Batch``
without a Python object per field; every other row, a real error or merely a form these checks do not
know, goes to pydantic, which has the last word and writes the messages. So this path can only be
faster, never different; ``tests/test_ingest.py`` holds it to that against the models.

Reading JSON as text needs one more guard: Polars turns a number or an object into text where the
schema says text, keeps the first of two equal keys (orjson the last) and reads ``null`` as absent. Two
regex passes over the lines count the known keys and look for a text field with a value that is not a
string; a row with a key Polars did not fill (a repeat, an explicit null) or such a value goes to
pydantic too. An explicit null where the models read it as absent (an optional field) or refuse absence
too (a required one) is first replaced by a stand-in value that Polars fills, so that the count still
sees every key and its repeats, and the stand-ins are turned back into nulls once counted: exporters
that write ``null`` for absent fields keep the fast path.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import annotated_types
import numpy as np
import orjson
import polars as pl
import pyarrow as pa
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticUndefined

from engine.batch import NAT_DAY, Batch, Pauses, date_rows, exemption_columns
from engine.cases import CASE_MODELS, MAX_DEPTH, Exemption, Pause, leaf_types
from engine.domain import EPOCH_ORDINAL, PAUSE_REASONS
from engine.values import NUMBER_TEXT, TIMESTAMP_TEXT, calendar_bounds

__all__ = [
    "Located",
    "RecordFrame",
    "ValidatedKind",
    "field_specs",
    "frame_schema",
    "ndjson_frame",
    "table_frame",
    "validate_frame",
]

Form = Literal["text", "choice", "timestamp", "number", "integer", "money", "boolean", "object", "list"]


@dataclass
class Located:
    """A record and where it came from: ``line`` is the line for text files, the row for Parquet."""

    file: str
    line: int
    record: Any


# ---------------------------------------------------------------------------------------------------------
# What each model field accepts, read from the models themselves
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    form: Form
    required: bool
    nullable: bool  # JSON null accepted (an Optional field); else null is an error even with a default
    default: Any = None
    choices: tuple[str, ...] = ()
    lower: float | None = None  # ≥ lower, or > lower when ``exclusive``
    exclusive: bool = False
    upper: float | None = None  # ≤ upper
    min_length: int = 0
    max_length: int | None = None
    not_before: str | None = None  # the sibling field this end must not precede
    model: type[BaseModel] | None = None  # for objects and lists of objects


@functools.cache
def field_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The fields of a model as the column checks need them: form, bounds, choices, defaults, order."""
    specs = []
    for name, info in model.model_fields.items():
        leaves = leaf_types(info.annotation)
        nullable = type(None) in leaves
        leaves = [leaf for leaf in leaves if leaf is not type(None)]
        metadata = list(info.metadata)
        # Optional[Annotated[…]] keeps the inner metadata inside the annotation, not in ``metadata``.
        for arg in typing.get_args(info.annotation):
            if typing.get_origin(arg) is typing.Annotated:
                metadata.extend(typing.get_args(arg)[1:])
        options: dict[str, Any] = {}
        for item in metadata:
            if isinstance(item, annotated_types.Ge):
                options.update(lower=float(item.ge))  # type: ignore[arg-type]
            elif isinstance(item, annotated_types.Le):
                options.update(upper=float(item.le))  # type: ignore[arg-type]
            elif isinstance(item, annotated_types.Gt):
                options.update(lower=float(item.gt), exclusive=True)  # type: ignore[arg-type]
            elif isinstance(item, annotated_types.MinLen):
                options.update(min_length=item.min_length)
            elif isinstance(item, annotated_types.MaxLen):
                options.update(max_length=item.max_length)
            elif isinstance(item, AfterValidator) and hasattr(item.func, "start_field"):
                options.update(not_before=item.func.start_field)
        origin = typing.get_origin(leaves[0])
        if origin is list:
            (item_model,) = typing.get_args(leaves[0])
            form: Form = "list"
            options.update(model=item_model)
        elif origin is Literal:
            form = "choice"
            options.update(choices=tuple(typing.get_args(leaves[0])))
        elif isinstance(leaves[0], type) and issubclass(leaves[0], BaseModel):
            form = "object"
            options.update(model=leaves[0])
        elif date in leaves:
            form = "timestamp"
        else:
            form = {str: "text", bool: "boolean", int: "integer", float: "number"}.get(leaves[0], "money")  # type: ignore[assignment]
        default = None if info.default is PydanticUndefined else info.default
        specs.append(FieldSpec(name, form, info.is_required(), nullable, default, **options))
    return tuple(specs)


def _dtype(spec: FieldSpec) -> pl.DataType:
    if spec.form == "object":
        assert spec.model is not None
        return pl.Struct({s.name: _dtype(s) for s in field_specs(spec.model)})
    if spec.form == "list":
        assert spec.model is not None
        return pl.List(pl.Struct({s.name: _dtype(s) for s in field_specs(spec.model)}))
    return pl.String()


@functools.cache
def frame_schema() -> dict[str, pl.DataType]:
    """One schema for a chunk of any kinds: the union of every kind's fields, scalars read as text."""
    return {name: _dtype(spec) for name, spec in _column_specs().items()}


def _nested(specs: Iterable[FieldSpec]) -> Iterator[FieldSpec]:
    """The specs and, depth first, those of the objects and lists of objects among them."""
    for spec in specs:
        yield spec
        if spec.model is not None:
            yield from _nested(field_specs(spec.model))


@functools.cache
def _key_patterns() -> tuple[str, str]:
    """Regexes for (any known key; a text field's key followed by a value that is not a string, or an
    escaped ASCII character anywhere).

    A row is read as JSON means it only when the first counts exactly the fields Polars found with a
    value and the second finds nothing: a repeated key or an explicit null raises the count, a number
    where text belongs matches the second, and such rows go to pydantic (see the module docstring). A
    key spelt with escapes (``"case\\u005fid"``) would lower the count and could hide one of the others,
    so escaped ASCII sends its row to pydantic too; escaped non-ASCII text cannot spell a known key.
    The second runs on the lines as written: it lets through a null that ``_null_stand_ins`` replaces
    (no other JSON value starts with ``n``), and keeps every stand-in value of the read lines unique to
    them, since a line that spells one itself is escaped ASCII.
    """
    known: set[str] = set()
    text: dict[bool, set[str]] = {True: set(), False: set()}  # by whether null has a stand-in
    # The same fields, nested ones included, as the frame schema whose values ``_present_keys`` counts.
    for spec in _nested(_column_specs().values()):
        known.add(spec.name)
        if spec.form == "text":
            text[spec.name in _null_stand_ins()].add(spec.name)
    space = "[ \t\r\n]*"
    mistyped = [
        rf'"(?:{"|".join(sorted(names))})"{space}:{space}[^" \t\r\n{"n" if stood_in else ""}]'
        for stood_in, names in text.items()
        if names
    ]
    return rf'"(?:{"|".join(sorted(known))})"{space}:', "|".join([*mistyped, r"\\u00[0-7][0-9a-fA-F]"])


# What stands in for an explicit null until the keys are counted, a scalar's and (in its first field) a
# sub-record's: strings no line that takes the fast path can hold (escaped ASCII, see ``_key_patterns``).
_STAND_IN, _RECORD_STAND_IN = "\x00", "\x01"


@functools.cache
def _null_stand_ins() -> dict[str, bytes]:
    """For each field whose explicit null may be read as absent, the JSON text that stands in for it.

    That is a field which, wherever a model has it, is required (absent is refused too, and pydantic
    words the error) or optional with no default but None. A scalar's stand-in is the stand-in string;
    a sub-record's is a record whose first field (a scalar) holds it. Lists, fields with another default
    and names that are a scalar in one model and a sub-record in another keep their nulls (and so their
    rows go to pydantic).
    """
    found: dict[str, set[bytes | None]] = {}
    for model in CASE_MODELS.values():
        for spec in _nested(field_specs(model)):
            found.setdefault(spec.name, set()).add(_stand_in_for(spec))
    return {name: stand_in for name, (stand_in, *others) in found.items() if stand_in and not others}


def _stand_in_for(spec: FieldSpec) -> bytes | None:
    if spec.form == "list" or not (spec.required or (spec.nullable and spec.default is None)):
        return None
    if spec.form != "object":
        return orjson.dumps(_STAND_IN)
    assert spec.model is not None
    first = field_specs(spec.model)[0]
    assert first.form not in ("object", "list"), first  # ``_as_null`` compares it with the stand-in
    return orjson.dumps({first.name: _RECORD_STAND_IN})


@functools.cache
def _null_patterns() -> list[tuple[str, str]]:
    """(regex, replacement) pairs that put each stand-in of ``_null_stand_ins`` in place of its nulls.

    Only a real key can match ``"name":`` (see ``_key_patterns``), and after it only the literal
    ``null`` starts with ``n``."""
    by_stand_in: dict[bytes, list[str]] = {}
    for name, stand_in in _null_stand_ins().items():
        by_stand_in.setdefault(stand_in, []).append(name)
    space = "[ \t\r\n]*"
    return [
        (
            rf'("(?:{"|".join(sorted(names))})"{space}:{space})null',
            "${1}" + stand_in.decode().replace("$", "$$"),
        )
        for stand_in, names in by_stand_in.items()
    ]


def _stood_in(lines: list[bytes], text: pl.Series) -> tuple[list[bytes], pl.Series]:
    """The lines (and their ``text``) with stand-ins for their explicit nulls, as ``_null_stand_ins``
    says; the very arguments when no line has one."""
    rows = text.str.contains("null", literal=True)
    if not rows.any():
        return lines, text
    replaced = text.filter(rows)
    for pattern, replacement in _null_patterns():
        replaced = replaced.str.replace_all(pattern, replacement)
    read = list(lines)
    at = np.flatnonzero(rows.to_numpy())
    for i, line in zip(at.tolist(), replaced.cast(pl.Binary).to_list(), strict=True):
        read[i] = line
    return read, text.clone().scatter(at, replaced)


def _as_null(value: pl.Expr, dtype: pl.DataType, name: str | None) -> pl.Expr:
    """``value`` (of field ``name``; None for a list item) with its stand-ins for null made null again."""
    stand_in = _null_stand_ins().get(name) if name is not None else None
    if isinstance(dtype, pl.List):
        return value.list.eval(_as_null(pl.element(), dtype.inner, None))
    if isinstance(dtype, pl.Struct):
        parts = [_as_null(value.struct.field(f.name), f.dtype, f.name).alias(f.name) for f in dtype.fields]
        null = value.is_null()
        if stand_in is not None:
            null = null | (value.struct.field(dtype.fields[0].name) == _RECORD_STAND_IN).fill_null(False)
        return pl.when(null).then(None).otherwise(pl.struct(parts))
    if stand_in is None:
        return value
    return pl.when(value == _STAND_IN).then(None).otherwise(value)


def _present_keys() -> pl.Expr:
    """Per row, how many known fields Polars found with a value: what ``_key_patterns`` should count."""
    counts = []
    for name, dtype in frame_schema().items():
        column = pl.col(name)
        counts.append(column.is_not_null().cast(pl.Int32))
        if isinstance(dtype, pl.Struct):
            counts.extend(column.struct.field(f.name).is_not_null().cast(pl.Int32) for f in dtype.fields)
        elif isinstance(dtype, pl.List):
            inner = dtype.inner
            assert isinstance(inner, pl.Struct)
            per_item = pl.sum_horizontal(
                pl.element().struct.field(f.name).is_not_null().cast(pl.Int32) for f in inner.fields
            )
            counts.append(column.list.eval(per_item).list.sum().fill_null(0).cast(pl.Int32))
    return pl.sum_horizontal(counts)


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


@dataclass
class RecordFrame:
    """A chunk of one file: the rows Polars read cleanly as a frame, the others as parsed records.

    ``raw`` keeps each frame row's original (its JSON line, or its Parquet row) so that a row the column
    checks refuse can still be handed to pydantic as the record it was.
    """

    file: str
    frame: pl.DataFrame
    lines: np.ndarray  # int64: line (or row) of each frame row
    raw: list[bytes] | pa.Table
    records: list[Located]  # rows that take pydantic's path from the start
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (line, why): not a JSON object

    @classmethod
    def of_records(cls, file: str, records: list[Located]) -> RecordFrame:
        """A chunk read row by row (JSON arrays, CSV): everything takes pydantic's path."""
        return cls(file, pl.DataFrame(schema=frame_schema()), np.zeros(0, np.int64), [], records)

    def case_ids(self) -> list[Any]:
        """The case_id of every row, frame rows first, then records (None where there is none)."""
        ids: list[Any] = self.frame.get_column("case_id").to_list()
        return ids + [r.record.get("case_id") if isinstance(r.record, dict) else None for r in self.records]

    def line_numbers(self) -> np.ndarray:
        """The line (or row) of every row, in the order of ``case_ids``."""
        return np.concatenate([self.lines, np.array([r.line for r in self.records], np.int64)])

    def originals(self, rows: np.ndarray) -> list[Located]:
        """The frame rows ``rows`` as records, the way the row-by-row reader would have produced them."""
        if isinstance(self.raw, list):
            values = [orjson.loads(self.raw[i]) for i in rows.tolist()]
        else:
            values = [_without_nulls(r) for r in self.raw.take(pa.array(rows, pa.int64())).to_pylist()]
        return [
            Located(self.file, line, value)
            for line, value in zip(self.lines[rows].tolist(), values, strict=True)
        ]

    def select(self, keep: np.ndarray) -> RecordFrame:
        """The chunk without the rows where ``keep`` (in the order of ``case_ids``) is False."""
        n = self.frame.height
        rows = np.flatnonzero(keep[:n])
        raw = [self.raw[i] for i in rows.tolist()] if isinstance(self.raw, list) else self.raw.take(rows)
        records = [r for r, k in zip(self.records, keep[n:].tolist(), strict=True) if k]
        frame = self.frame.filter(pl.Series(keep[:n]))
        return RecordFrame(self.file, frame, self.lines[rows], raw, records, self.unreadable)

    def __len__(self) -> int:
        return self.frame.height + len(self.records) + len(self.unreadable)


def _without_nulls(value: Any) -> Any:
    """Columnar formats write absent fields as null; a case record simply leaves them out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def ndjson_frame(name: str, lines: list[bytes], numbers: np.ndarray, retry: bool = True) -> RecordFrame:
    """NDJSON lines (each with its line number) as a frame; lines Polars cannot take go to pydantic."""
    try:  # only a file's last line can lack its newline
        text = pl.Series(pa.array(lines, pa.binary())).cast(pl.String)  # refuses what is not UTF-8
        read, read_text = _stood_in(lines, text)
        frame = pl.read_ndjson(b"".join(read), schema=frame_schema())
    except pl.exceptions.PolarsError:
        return _line_by_line(name, lines, numbers, retry)
    blank = text.str.contains(r"^[ \t\r\n]*$").to_numpy()  # lines Polars skips, as JSON whitespace
    if blank.any():
        lines = [lines[i] for i in np.flatnonzero(~blank).tolist()]
        numbers, text, read_text = (
            numbers[~blank],
            text.filter(pl.Series(~blank)),
            read_text.filter(pl.Series(~blank)),
        )
    if len(lines) != frame.height:
        return _line_by_line(name, lines, numbers, retry)
    keys, mistyped = _key_patterns()
    present = frame.select(_present_keys()).to_series()
    # A line with more brackets than the nesting cap might nest too deep in an unknown field (which the
    # frame does not read): pydantic decides.
    shallow = text.str.count_matches(r"[\[{]") <= MAX_DEPTH
    counted = read_text.str.count_matches(keys) == present
    typed = (counted & ~text.str.contains(mistyped) & shallow).to_numpy()
    if read is not lines:  # the stand-ins counted, they are nulls again
        frame = frame.select(_as_null(pl.col(c), t, c).alias(c) for c, t in frame_schema().items())
    whole = RecordFrame(name, frame, numbers, lines, [])
    if typed.all():
        return whole
    return RecordFrame(
        name,
        frame.filter(pl.Series(typed)),
        numbers[typed],
        [lines[i] for i in np.flatnonzero(typed).tolist()],
        whole.originals(np.flatnonzero(~typed)),
    )


def _line_by_line(name: str, lines: list[bytes], numbers: np.ndarray, retry: bool) -> RecordFrame:
    """A chunk Polars refused: find the lines that are not JSON objects and read the rest again, once;
    if Polars still refuses (a value of a shape no schema column takes), every line goes to pydantic."""
    records, unreadable, good = [], [], []
    for i, (line, number) in enumerate(zip(lines, numbers.tolist(), strict=True)):
        if not line.strip(b" \t\r\n"):
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            unreadable.append((number, f"invalid JSON: {exc}"))
            continue
        records.append(Located(name, number, value))
        if isinstance(value, dict):
            good.append(i)
    if retry and good and len(good) < len(lines):
        chunk = ndjson_frame(name, [lines[i] for i in good], numbers[good], retry=False)
        chunk.records += [r for r in records if not isinstance(r.record, dict)]
    else:
        chunk = RecordFrame.of_records(name, records)
    chunk.unreadable = unreadable
    return chunk


def table_frame(name: str, table: pa.Table, numbers: np.ndarray) -> RecordFrame:
    """Typed Arrow rows (a Parquet row group, a Spark Arrow batch) as a frame in the text schema, each
    row numbered by ``numbers``. Typed columns (numbers, Decimal, Date, Datetime, booleans, categoricals,
    structs with their fields in any order) are written as the text the case models read; a column that
    cannot be sends its non-empty rows to pydantic."""
    source = pl.from_arrow(table)
    assert isinstance(source, pl.DataFrame)
    columns, odd = [], pl.lit(False)
    for column_name, spec in _column_specs().items():
        dtype = _dtype(spec)
        text = None
        if column_name in source.columns:
            text = _as_text(pl.col(column_name), source.schema[column_name], spec)
            if text is None:
                odd = odd | pl.col(column_name).is_not_null()
        columns.append((pl.lit(None, dtype) if text is None else text).alias(column_name))
    frame = source.select([*columns, odd.alias("_odd")])
    numbers = numbers.astype(np.int64)
    odd_rows = frame["_odd"].to_numpy()
    whole = RecordFrame(name, frame.drop("_odd"), numbers, table, [])
    if not odd_rows.any():
        return whole
    typed = np.flatnonzero(~odd_rows)
    return RecordFrame(
        name,
        whole.frame.filter(pl.Series(~odd_rows)),
        numbers[typed],
        table.take(typed),
        whole.originals(np.flatnonzero(odd_rows)),
    )


def _as_text(column: pl.Expr, have: pl.DataType, spec: FieldSpec) -> pl.Expr | None:
    """A Parquet column of type ``have`` in the text schema's type for ``spec``, or None when its values
    are not what the models read as that field (a number where text belongs, a time of day, a list
    where an object belongs): those rows go to pydantic, which refuses or converts them itself.

    Values become the text that ``str(value)`` of the typed value would give, which the column checks
    parse as pydantic parses the typed value; an empty string means absent, as in CSV.
    """
    if have == pl.Null:
        return column.cast(_dtype(spec))
    if spec.form in ("object", "list"):
        assert spec.model is not None
        struct = have if spec.form == "object" else getattr(have, "inner", None)
        if not isinstance(struct, pl.Struct) or (spec.form == "list") != isinstance(have, pl.List):
            return None
        source = column if spec.form == "object" else pl.element()
        present = {f.name: f.dtype for f in struct.fields}
        parts = []
        for inner in field_specs(spec.model):
            part = (
                _as_text(source.struct.field(inner.name), present[inner.name], inner)
                if inner.name in present
                else pl.lit(None, _dtype(inner))
            )
            if part is None:
                return None
            parts.append(part.alias(inner.name))
        rebuilt = pl.when(source.is_null()).then(None).otherwise(pl.struct(parts))
        return rebuilt if spec.form == "object" else column.list.eval(rebuilt)
    stringlike = have == pl.String or isinstance(have, pl.Categorical | pl.Enum)
    if spec.form == "text" and not stringlike:
        return None  # a text field holding a number is an error, not text
    if isinstance(have, pl.Datetime):  # µs, as Python's datetime; "+00:00" kept when zoned
        text = column.cast(pl.Datetime("us", have.time_zone)).cast(pl.String)
    elif stringlike or have.is_numeric() or have in (pl.Boolean, pl.Date):
        text = column.cast(pl.String)
    else:
        return None
    return pl.when(text == "").then(None).otherwise(text)


@functools.cache
def _column_specs() -> dict[str, FieldSpec]:
    """Each top-level field of any kind with its spec (a field name means the same in every kind)."""
    specs: dict[str, FieldSpec] = {}
    for model in CASE_MODELS.values():
        for spec in field_specs(model):
            specs.setdefault(spec.name, spec)
    return specs


# ---------------------------------------------------------------------------------------------------------
# Checking and converting
# ---------------------------------------------------------------------------------------------------------

_INTEGER = r"^[0-9]{1,15}(?:\.0+)?$"  # pydantic takes "2.0" (and 2.0) as 2
# Whole fen with at most 15 significant digits, so the float, the Decimal and the text all agree.
_MONEY = r"^[0-9]{1,13}(?:\.[0-9]{1,2})?$"
_SHANGHAI_MINUTES = 8 * 60


def _timestamp(name: str) -> list[pl.Expr]:
    """ISO 8601 text → ``#day`` (local Asia/Shanghai day number) and ``#at`` (UTC µs, only when a time
    is given), as ``_parse_timestamp`` converts it; reads the regex groups parsed once into ``#p``."""
    parts = pl.col(f"{name}#p")

    def group(i: int) -> pl.Expr:
        return parts.struct.field(str(i))

    day = group(1).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64)
    hour, minute = group(2).cast(pl.Int64, strict=False), group(3).cast(pl.Int64, strict=False)
    second = group(4).cast(pl.Int64, strict=False).fill_null(0)
    micro = group(5).str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0)
    zone = group(6)
    zone_hours = zone.str.slice(1, 2).cast(pl.Int64, strict=False)
    zone_minutes = zone.str.slice(4, 2).cast(pl.Int64, strict=False)
    sign = pl.when(zone.str.starts_with("-")).then(-1).otherwise(1)
    offset = (
        pl.when(zone.is_null())
        .then(_SHANGHAI_MINUTES)
        .when(zone == "Z")
        .then(0)
        .otherwise(sign * (zone_hours * 60 + zone_minutes))
    )
    zone_ok = zone.is_null() | (zone == "Z") | ((zone_hours < 24) & (zone_minutes < 60))
    clock_ok = hour.is_null() | ((hour < 24) & (minute < 60) & (second < 60))
    minutes = hour * 60 + minute - offset  # null for a date alone
    local_day = day + ((minutes + _SHANGHAI_MINUTES) // 1440).fill_null(0)
    first, last = (d.toordinal() - EPOCH_ORDINAL for d in calendar_bounds())
    ok = day.is_not_null() & zone_ok & clock_ok & local_day.is_between(first, last)
    return [
        ok.fill_null(False).alias(f"{name}#ok"),
        local_day.alias(f"{name}#day"),
        ((day * 86400 + minutes * 60 + second) * 1_000_000 + micro).alias(f"{name}#at"),
    ]


def _converted(name: str, form: Form) -> list[pl.Expr]:
    """The columns a text column of ``form`` converts to: ``#ok`` (the text has the form) and values."""
    column = pl.col(name)
    if form == "timestamp":
        return _timestamp(name)
    if form == "boolean":
        return [
            column.is_in(("true", "false")).fill_null(False).alias(f"{name}#ok"),
            (column == "true").alias(f"{name}#v"),
        ]
    pattern = {"number": NUMBER_TEXT, "integer": _INTEGER, "money": _MONEY}[form]
    value = column.cast(pl.Float64, strict=False)
    converted = [
        (column.str.contains(pattern) & value.is_finite()).fill_null(False).alias(f"{name}#ok"),
        value.alias(f"{name}#v"),
    ]
    if form == "money":
        whole = column.str.extract(r"^([0-9]+)", 1).cast(pl.Int64, strict=False)
        cents = column.str.extract(r"\.([0-9]+)$", 1).str.pad_end(2, "0").cast(pl.Int64, strict=False)
        converted.append((whole * 100 + cents.fill_null(0)).alias(f"{name}#fen"))
    return converted


def _flat_specs(model: type[BaseModel], prefix: str = "") -> dict[str, FieldSpec]:
    """Scalar fields of a model and of its sub-records, by dotted column name (lists excluded)."""
    found: dict[str, FieldSpec] = {}
    for spec in field_specs(model):
        if spec.form == "object":
            assert spec.model is not None
            found.update(_flat_specs(spec.model, f"{prefix}{spec.name}."))
        elif spec.form != "list":
            found[f"{prefix}{spec.name}"] = spec
    return found


def _convert(frame: pl.DataFrame, specs: dict[str, FieldSpec]) -> pl.DataFrame:
    """The text columns of ``specs`` parsed into values and ``#ok`` flags (sub-record fields flattened)."""
    stamps = [name for name, spec in specs.items() if spec.form == "timestamp"]
    converted = [
        expr
        for name, spec in specs.items()
        if spec.form not in ("text", "choice", "timestamp")
        for expr in _converted(name, spec.form)
    ]
    flat = (
        frame.lazy()
        .with_columns(
            pl.col(name.split(".")[0]).struct.field(name.split(".")[1]).alias(name)
            for name in specs
            if "." in name
        )
        .with_columns(converted)
        .collect()
    )
    return flat.with_columns(_timestamps(flat, stamps))


def _timestamps(frame: pl.DataFrame, names: list[str]) -> list[pl.Series]:
    """``#ok``, ``#day`` and ``#at`` of each timestamp column, parsing only the values present.

    A chunk of mixed kinds has ~20 timestamp columns of which a row fills two or three: parsing the
    present values as one long column and scattering the results back costs a fraction of parsing
    every column whole.
    """
    if not names:
        return []
    long = (
        frame.lazy()
        .select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"), *names)
        .unpivot(on=names, index="_i", variable_name="_field", value_name="_text")
        .drop_nulls("_text")
        .with_columns(pl.col("_text").str.extract_groups(TIMESTAMP_TEXT).alias("_text#p"))
        .with_columns(_timestamp("_text"))
        .collect()
    )
    found = long.partition_by("_field", as_dict=True)
    columns = []
    for name in names:
        part = found.get((name,))
        for suffix, dtype in (("ok", pl.Boolean), ("day", pl.Int64), ("at", pl.Int64)):
            column = pl.repeat(False if suffix == "ok" else None, frame.height, dtype=dtype, eager=True)
            if part is not None:
                column = column.scatter(part.get_column("_i"), part.get_column(f"_text#{suffix}"))
            columns.append(column.alias(f"{name}#{suffix}"))
    return columns


def _valid(specs: dict[str, FieldSpec]) -> pl.Expr:
    """The row holds a valid record of these fields: each absent, or present with its form, bounds and
    order; required ones present (within a present sub-record)."""
    ok: pl.Expr = pl.lit(True)
    for name, spec in specs.items():
        column = pl.col(name)
        present = column.is_not_null()
        if spec.form == "choice":
            good = column.is_in(spec.choices)
        elif spec.form == "text":
            good = pl.lit(True)
        else:
            good = pl.col(f"{name}#ok")
        if spec.min_length:
            good = good & (column.str.len_chars() >= spec.min_length)
        if spec.max_length is not None:
            good = good & (column.str.len_chars() <= spec.max_length)
        if spec.lower is not None:
            value = pl.col(f"{name}#v")
            good = good & ((value > spec.lower) if spec.exclusive else (value >= spec.lower))
        if spec.upper is not None:
            good = good & (pl.col(f"{name}#v") <= spec.upper)
        if spec.not_before is not None:
            start = name.rsplit(".", 1)[0] + "." + spec.not_before if "." in name else spec.not_before
            end_at, start_at = pl.col(f"{name}#at"), pl.col(f"{start}#at")
            by_instant = end_at.is_not_null() & start_at.is_not_null()
            good = good & pl.when(by_instant).then(end_at >= start_at).otherwise(
                pl.col(f"{name}#day") >= pl.col(f"{start}#day")
            )
        holds = good.fill_null(False) | ~present
        if spec.required:
            parent = name.rsplit(".", 1)[0] if "." in name else None
            holds = holds & (present | (pl.col(parent).is_null() if parent else pl.lit(False)))
        ok = ok & holds
    return ok


@dataclass
class ValidatedKind:
    """The rows of one kind that passed the column checks, as a ``Batch``, and where each came from."""

    kind: str
    batch: Batch
    lines: np.ndarray


@functools.cache
def _chunk_specs() -> dict[str, FieldSpec]:
    """Every scalar column of the frame schema with its form (the same in every kind that has it)."""
    found: dict[str, FieldSpec] = {}
    for model in CASE_MODELS.values():
        for name, spec in _flat_specs(model).items():
            seen = found.setdefault(name, spec)
            if seen.form != spec.form:
                raise TypeError(f"field {name} has two forms ({seen.form}, {spec.form}); ingest needs one")
    return found


def validate_frame(
    chunk: RecordFrame, fields: dict[str, list[str]]
) -> tuple[list[ValidatedKind], list[Located]]:
    """Batches of the rows that pass, per kind (carrying ``fields[kind]``), and the other rows as records.

    Every column is converted once for the whole chunk and every kind's checks are one expression:
    Polars spends tens of microseconds planning each expression node whatever the number of rows, so
    one large query over the chunk costs far less than a query per kind.
    """
    specs = _chunk_specs()
    kind = pl.col("kind")
    valid_kind: Any = pl
    for name, model in CASE_MODELS.items():
        valid_kind = valid_kind.when(kind == name).then(_valid(_flat_specs(model)))
    # Only what the batches read is kept: the parsed parts of every column would double the memory.
    keep = {"_row": None, "kind": None, "pauses": None, "exemptions": None, "_ok": None}
    for name, paths in fields.items():
        keep.update(dict.fromkeys(_batch_columns(name, tuple(paths))))
    frame = (
        _convert(chunk.frame.with_row_index("_row"), specs)
        .lazy()
        .with_columns(valid_kind.otherwise(False).fill_null(False).alias("_ok"))
        .select(list(keep))
        .collect()
    )
    pauses, pauses_ok = _items(frame, "pauses", Pause)
    exemptions, exemptions_ok = _items(frame, "exemptions", Exemption)
    good = frame.get_column("_ok").to_numpy() & pauses_ok & exemptions_ok
    valid: list[ValidatedKind] = []
    passed = frame.lazy().filter(pl.Series(good))
    for name in frame.filter(pl.Series(good)).get_column("kind").unique(maintain_order=True).to_list():
        part = passed.filter(kind == name).select(_batch_columns(name, tuple(fields[name]))).collect()
        batch = _batch(name, part, fields[name], pauses, exemptions)
        valid.append(ValidatedKind(name, batch, chunk.lines[part.get_column("_row").to_numpy()]))
    return valid, [*chunk.records, *chunk.originals(np.flatnonzero(~good))]


def _items(frame: pl.DataFrame, name: str, model: type[BaseModel]) -> tuple[pl.DataFrame, np.ndarray]:
    """List items (pauses, exemptions) as one converted table with the chunk row each belongs to; and per
    row, whether all its items are valid."""
    specs = _flat_specs(model)
    exploded = (
        frame.select("_row", pl.col(name))
        .filter(pl.col(name).list.len() > 0)
        .explode(name)
        .select("_row", pl.col(name).is_not_null().alias("_item"), pl.col(name).struct.unnest())
    )
    table = (
        _convert(exploded, specs)
        .lazy()
        .with_columns((_valid(specs) & pl.col("_item")).fill_null(False).alias("_ok"))
        .collect()
    )
    ok = np.ones(frame.height, bool)
    ok[table.filter(~pl.col("_ok")).get_column("_row").to_numpy()] = False
    return table, ok


@functools.cache
def _batch_columns(kind: str, fields: tuple[str, ...]) -> list[str]:
    """The converted columns ``_batch`` reads for these fields: a narrow slice of the chunk's frame."""
    specs = _flat_specs(CASE_MODELS[kind])
    names = ["_row", "case_id"]
    for path in fields:
        spec = specs.get(path)
        if spec is None:
            continue
        names += {
            "timestamp": [f"{path}#day"],
            "number": [f"{path}#v"],
            "integer": [f"{path}#v"],
            "money": [f"{path}#v", f"{path}#fen"],
            "boolean": [f"{path}#v"],
        }.get(spec.form, [path])
    return list(dict.fromkeys(names))


def _batch(
    kind: str, rows: pl.DataFrame, fields: list[str], pauses: pl.DataFrame, exemptions: pl.DataFrame
) -> Batch:
    """The same ``Batch`` that ``Batch.from_cases`` builds from the validated models of these rows."""
    n = rows.height
    specs = _flat_specs(CASE_MODELS[kind])
    columns: dict[str, np.ndarray] = {}
    fen: dict[str, np.ndarray] = {}
    day_row = date_rows(kind, tuple(fields))
    days = np.full((len(day_row), n), NAT_DAY, np.int64)
    # Classified by the spec's form alone: ``field_type`` (how ``Batch.from_cases`` and ``date_rows`` lay
    # out the same fields) reads it coarser (timestamp: date; number, integer: number; money; the rest:
    # other), and reads a field the kind does not have as "other".
    for path in fields:
        spec = specs.get(path)
        if spec is None:  # a field this kind does not have reads as absent, as on a model
            columns[path] = np.full(n, None, object)
        elif spec.form == "timestamp":
            days[day_row[path]] = rows.get_column(f"{path}#day").fill_null(NAT_DAY).to_numpy()
        elif spec.form in ("number", "integer", "money"):
            columns[path] = rows.get_column(f"{path}#v").fill_null(np.nan).to_numpy()
            if spec.form == "money":
                fen[path] = rows.get_column(f"{path}#fen").fill_null(0).to_numpy()
        elif spec.form == "boolean":
            value = rows.get_column(f"{path}#v")
            columns[path] = np.array(
                (value if spec.default is None else value.fill_null(spec.default)).to_list(), object
            )
        else:
            columns[path] = np.array(rows.get_column(path).to_list(), object)
    dates = days.view("datetime64[D]")
    for path, i in day_row.items():
        columns[path] = dates[i]
    # Chunk row → this batch's row, to re-point the items.
    chunk_rows = rows.get_column("_row").to_numpy()
    position = np.full(int(chunk_rows.max()) + 1, -1, np.int64)
    position[chunk_rows] = np.arange(n)
    mine = pauses.filter(pl.col("_row").is_in(pl.Series(chunk_rows).implode()))
    table = np.empty((4, mine.height), np.int64)
    table[0] = position[mine.get_column("_row").to_numpy()]
    table[1] = (
        mine.get_column("reason")
        .replace_strict(PAUSE_REASONS, range(len(PAUSE_REASONS)), return_dtype=pl.Int64)
        .to_numpy()
    )
    table[2] = mine.get_column("start#day").to_numpy()
    table[3] = mine.get_column("end#day").fill_null(NAT_DAY).to_numpy()
    exempted = (
        exemptions.filter(pl.col("_row").is_in(pl.Series(chunk_rows).implode()))
        .select("_row", "rule", "reason")
        .iter_rows()
    )
    return Batch(
        kind,
        np.array(rows.get_column("case_id").to_list(), object),
        {path: columns[path] for path in fields},
        fen,
        Pauses.of_table(table),
        exemption_columns(n, ((position[row], rule, reason) for row, rule, reason in exempted)),
        days,
        day_row,
    )
