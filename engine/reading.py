"""Input files as chunks of records: which files a scan reads (by suffix, gzipped or not) and each file
in chunks — NDJSON lines and Parquet rows as blocks for the column checks (``engine.ingest`` builds their
frames), JSON arrays and CSV rows as records for pydantic.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from engine.errors import InputError
from engine.ingest import Located, RecordFrame, ndjson_frame, table_frame

__all__ = [
    "CHUNK",
    "FRAME_CHUNK",
    "GZIP",
    "SUFFIXES",
    "Block",
    "as_frame",
    "input_files",
    "input_form",
    "ndjson_blocks",
    "parquet_blocks",
    "read_chunks",
    "read_ndjson_frames",
    "read_parquet_frames",
]

SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
GZIP = ".gz"  # any text form may be gzipped (.ndjson.gz, .jsonl.gz, .json.gz, .csv.gz)
CHUNK = 20_000
# Rows per frame chunk: Polars plans each chunk's checks once (tens of ms), so frames are larger.
FRAME_CHUNK = 50_000


def input_form(path: Path) -> tuple[str, bool]:
    """(form, gzipped) of a file from its suffixes, in any case (``cases.NDJSON``, ``x.csv.GZ``), or
    InputError saying why it cannot be read."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    gzipped = suffixes[-1:] == [GZIP]
    form = SUFFIXES.get(suffixes[-2] if gzipped and len(suffixes) > 1 else suffixes[-1] if suffixes else "")
    if form is None:
        raise InputError(
            "unknown input format (use .ndjson, .jsonl, .json, .csv or .parquet, or .gz of these)"
        )
    if gzipped and form == "parquet":
        raise InputError("a gzipped Parquet file cannot be read (Parquet compresses its own pages)")
    return form, gzipped


def input_files(paths: Iterable[Path], skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Files to read: each named file, and every readable file in each named folder (sorted); the files
    of a folder that cannot be read are added to ``skipped`` as (file, why), a named one is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                try:
                    input_form(found)
                except InputError as exc:
                    if skipped is not None:
                        skipped.append((str(found), str(exc)))
                    continue
                files.append(found)
        elif path.is_file():
            input_form(path)  # raises for a file named but not readable
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """CSV columns ``approval.mode`` → ``{"approval": {"mode": …}}``; ``pauses``/``exemptions`` hold JSON."""
    record: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None or value == "":
            continue
        if key in ("pauses", "exemptions") and isinstance(value, str):
            # Text that is not JSON stays text, so validation reports it at its path.
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(value)
        target = record
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    return record


def read_chunks(path: Path) -> Iterator[Block | RecordFrame]:
    """Chunks of a file: NDJSON and Parquet as blocks, to become frames for the column checks
    (``as_frame``), JSON arrays and CSV as records for pydantic (they are read whole or row by row anyway)."""
    form, gzipped = input_form(path)
    name = str(path)
    if form == "ndjson":
        yield from ndjson_blocks(path, FRAME_CHUNK, gzipped)
    elif form == "parquet":
        yield from parquet_blocks(path, FRAME_CHUNK)
    elif form == "json":
        with pa.input_stream(path, compression="gzip" if gzipped else None) as stream:
            data = stream.read().removeprefix(codecs.BOM_UTF8)
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            chunk = RecordFrame.of_records(name, [])
            chunk.unreadable.append((1, f"invalid JSON: {exc}"))
            yield chunk
            return
        items = data if isinstance(data, list) else [data]
        for start in range(0, len(items), CHUNK):
            records = [
                Located(name, start + i + 1, item) for i, item in enumerate(items[start : start + CHUNK])
            ]
            yield RecordFrame.of_records(name, records)
    else:
        options = pa_csv.ConvertOptions(strings_can_be_null=True)
        reader = pa_csv.open_csv(
            pa.input_stream(path, compression="gzip" if gzipped else None),
            read_options=pa_csv.ReadOptions(block_size=1 << 22),
            convert_options=options,
        )
        # Every column as text: the case models read numbers, booleans and dates from strings anyway.
        first_line = 2  # line 1 is the header
        for batch in reader:
            rows = batch.cast(pa.schema([(f.name, pa.string()) for f in batch.schema])).to_pylist()
            yield RecordFrame.of_records(
                name, [Located(name, first_line + i, _nested(row)) for i, row in enumerate(rows)]
            )
            first_line += len(rows)


def as_frame(chunk: Block | RecordFrame) -> RecordFrame:
    return chunk.frame() if isinstance(chunk, Block) else chunk


@dataclass(frozen=True)
class Block:
    """A chunk of a file as read, before it becomes a ``RecordFrame``: NDJSON lines or Parquet rows, each
    numbered. Reading one is cheap and it is small to send to another process, which can build the frame."""

    file: str
    rows: list[bytes] | pa.Table
    numbers: np.ndarray  # int64: the line (or row) of each of ``rows``

    def frame(self) -> RecordFrame:
        if isinstance(self.rows, list):
            return ndjson_frame(self.file, self.rows, self.numbers)
        return table_frame(self.file, self.rows, self.numbers)


def ndjson_blocks(path: Path, chunk: int, gzipped: bool = False) -> Iterator[Block]:
    """Blocks of ``chunk`` lines of an NDJSON file (gzipped or not); a UTF-8 byte order mark at the start is
    skipped."""
    with gzip.open(path, "rb") if gzipped else path.open("rb") as handle:
        first = 1
        while lines := list(itertools.islice(handle, chunk)):  # lines split in C, not a Python loop
            if first == 1:
                lines[0] = lines[0].removeprefix(codecs.BOM_UTF8)
            yield Block(str(path), lines, np.arange(first, first + len(lines), dtype=np.int64))
            first += len(lines)


def read_ndjson_frames(path: Path, chunk: int, gzipped: bool = False) -> Iterator[RecordFrame]:
    """Chunks of an NDJSON file as frames; lines that are not JSON go to the chunk's ``unreadable``.

    A chunk Polars refuses as a whole (a broken line, a value of an impossible shape) is read again line
    by line with orjson, so one bad line costs its chunk the fast path, never its neighbours' verdicts.
    """
    return (block.frame() for block in ndjson_blocks(path, chunk, gzipped))


def parquet_blocks(path: Path, chunk: int) -> Iterator[Block]:
    """Blocks of ``chunk`` rows of a Parquet file, as Arrow tables."""
    row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk):
        yield Block(str(path), pa.Table.from_batches([batch]), np.arange(row, row + batch.num_rows))
        row += batch.num_rows


def read_parquet_frames(path: Path, chunk: int) -> Iterator[RecordFrame]:
    """Row groups of a Parquet file as frames in the text schema (``table_frame``)."""
    return (block.frame() for block in parquet_blocks(path, chunk))
