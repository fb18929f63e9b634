"""Reading source files whole or in batches of rows, never half.

Each reader yields frames of at most ``batch_rows`` rows (``None``: the whole file as one frame; a
history file of millions of rows is read batch by batch so it never sits in memory at once). Each
frame holds the file's columns plus ``raw_record`` (the original row as JSON text) or
raises ``MalformedSourceError`` naming the file and the problem: empty file, binary data, a file
that is not the format its name claims, unparsable CSV/JSON structure, a CSV whose last line is
cut (no line break at the end: a copy still in progress or a truncated file, whose last row would
otherwise be read with a cut value — 123 instead of 123.45). Text is decoded leniently
(invalid UTF-8 becomes U+FFFD) so a few bad bytes quarantine their rows in cleaning, while a file
that is mostly undecodable is rejected here as binary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.staged import MalformedSourceError
from anomaly_pipeline.adapters.timestamps import STAGED_TIME_FORMAT

CSV_SUFFIXES: Final = (".csv",)
PARQUET_SUFFIXES: Final = (".parquet", ".pq")
JSONL_SUFFIXES: Final = (".jsonl", ".ndjson")

_SNIFF_BYTES: Final = 64 * 1024
#: Share of undecodable characters in the sniffed head above which a "text" file is binary.
_MAX_REPLACEMENT_SHARE: Final = 0.05
_PARQUET_MAGIC: Final = b"PAR1"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _require_content(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"source file {path} does not exist")
    if path.stat().st_size == 0:
        raise MalformedSourceError(path, "the file is empty (0 bytes)")


def _require_text(path: Path, kind: str) -> None:
    """Reject empty and binary files before a text parser half-reads them."""
    _require_content(path)
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise MalformedSourceError(path, f"contains NUL bytes: binary data, not {kind}")
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > _MAX_REPLACEMENT_SHARE * len(text):
        raise MalformedSourceError(path, f"mostly not UTF-8 text: binary data, not {kind}")
    if not text.strip():
        raise MalformedSourceError(path, "contains only whitespace, no rows")


def _require_complete_last_line(path: Path) -> None:
    """A text file cut mid-row ends without a line break; every complete CSV writer ends one."""
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
    if last not in (b"\n", b"\r"):
        raise MalformedSourceError(
            path,
            "the last line is cut (the file does not end with a line break): it is still "
            "being written or was truncated; re-deliver the complete file",
        )


def _with_raw_record(path: Path, frame: pl.DataFrame, raw: pl.Series | None = None) -> pl.DataFrame:
    """Add ``raw_record``: ``raw`` when given (original JSON lines), else each row as JSON."""
    if "raw_record" in frame.columns:
        raise MalformedSourceError(path, "has a column named 'raw_record', reserved by the adapter")
    if raw is not None:
        return frame.with_columns(raw.alias("raw_record"))
    return frame.with_columns(pl.struct(frame.columns).struct.json_encode().alias("raw_record"))


def iter_csv_text(
    path: Path, *, column_names: Iterable[str] | None = None, batch_rows: int | None = None
) -> Iterator[pl.DataFrame]:
    """A CSV file as string columns plus ``raw_record``, in batches of ``batch_rows`` rows.

    With ``column_names`` the file has no header and must have exactly those columns (in that
    order); without, the first line is the header. Empty fields become null.
    """
    _require_text(path, "CSV")
    _require_complete_last_line(path)
    names = list(column_names) if column_names is not None else None
    scan = pl.scan_csv(path, has_header=names is None, infer_schema=False, encoding="utf8-lossy")
    try:
        batches = (
            [scan.collect()] if batch_rows is None else scan.collect_batches(chunk_size=batch_rows)
        )
        for frame in batches:
            if names is not None:
                if frame.width != len(names):
                    raise MalformedSourceError(
                        path,
                        f"has {frame.width} column(s), expected {len(names)}: {', '.join(names)}",
                    )
                frame.columns = names
            yield _with_raw_record(path, frame)
    except pl.exceptions.PolarsError as error:
        problem = f"not a readable CSV file ({_first_line(error)})"
        raise MalformedSourceError(path, problem) from error


def iter_jsonl_text(path: Path, *, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """A JSON Lines file (one object per line) as string columns plus ``raw_record``.

    Scalar values become their JSON text (numbers keep their digits, so long integer ids are not
    rounded through float); nested values keep their decoded type and are rejected by
    ``stringify`` if an adapter uses them. ``raw_record`` is the original line.
    """
    _require_text(path, "JSON Lines")
    with path.open(encoding="utf-8", errors="replace") as handle:
        while batch := list(islice(handle, batch_rows)):
            yield _jsonl_frame(path, [line.rstrip("\r\n") for line in batch])


def _jsonl_frame(path: Path, all_lines: list[str]) -> pl.DataFrame:
    lines = [line for line in all_lines if line.strip()]
    series = pl.Series("raw_record", lines, dtype=pl.String)
    try:
        inferred = series.str.json_decode(infer_schema_length=None).dtype
    except pl.exceptions.PolarsError as error:
        raise MalformedSourceError(path, _describe_bad_json(all_lines)) from error
    if not isinstance(inferred, pl.Struct):
        raise MalformedSourceError(path, _describe_bad_json(all_lines))
    dtype = pl.Struct(
        {
            field.name: field.dtype if field.dtype.is_nested() else pl.String()
            for field in inferred.fields
        }
    )
    try:
        decoded = series.str.json_decode(dtype).struct.unnest()
    except pl.exceptions.PolarsError as error:
        problem = f"inconsistent JSON values ({_first_line(error)})"
        raise MalformedSourceError(path, problem) from error
    return _with_raw_record(path, decoded, series)


def _describe_bad_json(lines: list[str]) -> str:
    # Only reached on failure: locate the first offending line (blank lines are skipped by the
    # reader but still counted, so the number matches an editor's).
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number} is not valid JSON ({error.msg})"
        if not isinstance(value, dict):
            return f"line {number} is not a JSON object"
    return "lines are not JSON objects of consistent structure"


def iter_parquet_typed(path: Path, *, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """A Parquet file with its own column types, plus ``raw_record`` (the row as JSON)."""
    _require_content(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(len(_PARQUET_MAGIC))
        handle.seek(max(size - len(_PARQUET_MAGIC), 0))
        tail = handle.read(len(_PARQUET_MAGIC))
    if size < 2 * len(_PARQUET_MAGIC) or head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        raise MalformedSourceError(path, "not a Parquet file (missing PAR1 magic bytes)")
    scan = pl.scan_parquet(path)
    try:
        batches = (
            [scan.collect()] if batch_rows is None else scan.collect_batches(chunk_size=batch_rows)
        )
        for frame in batches:
            yield _with_raw_record(path, frame)
    except (pl.exceptions.PolarsError, OSError) as error:
        problem = f"unreadable Parquet file ({_first_line(error)})"
        raise MalformedSourceError(path, problem) from error


def iter_tabular(path: Path, *, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
    """Dispatch on the file name: CSV (with header), Parquet or JSON Lines."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return iter_csv_text(path, batch_rows=batch_rows)
    if suffix in PARQUET_SUFFIXES:
        return iter_parquet_typed(path, batch_rows=batch_rows)
    if suffix in JSONL_SUFFIXES:
        return iter_jsonl_text(path, batch_rows=batch_rows)
    known = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES)
    raise MalformedSourceError(path, f"unsupported file extension {suffix!r} (expected {known})")


def require_columns(path: Path, frame: pl.DataFrame, needed: Iterable[str], why: str) -> None:
    """Raise naming the file and the absent columns when ``frame`` lacks any of ``needed``."""
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        present = [name for name in frame.columns if name != "raw_record"]
        raise MalformedSourceError(path, f"lacks column(s) {missing} {why}; it has {present}")


def stringify(
    path: Path, frame: pl.DataFrame, columns: Iterable[str], naive_time_zone: str = "UTC"
) -> pl.DataFrame:
    """Cast the named columns to text losslessly (datetimes to staged ISO-8601 in UTC).

    Naive datetimes are wall-clock times in ``naive_time_zone`` (UTC, the canonical contract's
    time zone, unless the source says otherwise). Nested values (lists, structs) cannot be one
    event field, so a column holding them makes the file malformed.
    """
    casts = []
    for name in columns:
        dtype = frame.schema[name]
        column = pl.col(name)
        if dtype.is_nested():
            raise MalformedSourceError(
                path, f"column {name!r} holds nested values ({dtype}), expected scalars"
            )
        if isinstance(dtype, pl.Datetime):
            aware = (
                column.dt.convert_time_zone("UTC")
                if dtype.time_zone
                else column.dt.replace_time_zone(naive_time_zone).dt.convert_time_zone("UTC")
            )
            casts.append(aware.dt.to_string(STAGED_TIME_FORMAT))
        else:
            casts.append(column.cast(pl.String))
    return frame.with_columns(casts)
