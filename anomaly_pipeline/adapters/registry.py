"""``source_reader`` / ``read_source``: how the ingest layer and onboarding read a source file.

A ``SourceReader`` binds a format to its time options: every format takes a time format
(strftime, or unix_s / unix_ms / iso8601; default: the format's own) and a time zone for naive
times (default UTC, or the mapping's). It reads a file whole (a landing day file) or in batches of
rows (a history file too large for memory), and names the columns its format does not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from anomaly_pipeline.adapters.canonical import stage_canonical
from anomaly_pipeline.adapters.fraud_log import FRAUD_LOG_COLUMNS, stage_fraud_log
from anomaly_pipeline.adapters.mapped import stage_mapped
from anomaly_pipeline.adapters.mapping import SourceMapping, load_mapping
from anomaly_pipeline.adapters.readers import iter_csv_text, iter_tabular
from anomaly_pipeline.adapters.taobao import TAOBAO_COLUMNS, stage_taobao
from anomaly_pipeline.adapters.timestamps import (
    ISO8601,
    UNIX_SECONDS,
    check_time_format,
    describe_time_format,
)
from anomaly_pipeline.schema import RAW_EVENT_COLUMNS

FileBatches = Callable[..., Iterator[pl.DataFrame]]
Stage = Callable[[pl.DataFrame, Path, str, str], pl.DataFrame]


@dataclass(frozen=True)
class _Format:
    batches: FileBatches
    stage: Stage
    time_format: str
    columns: tuple[str, ...]


_FORMATS: Final[dict[str, _Format]] = {
    "canonical": _Format(iter_tabular, stage_canonical, ISO8601, RAW_EVENT_COLUMNS),
    "taobao": _Format(
        partial(iter_csv_text, column_names=TAOBAO_COLUMNS),
        stage_taobao,
        UNIX_SECONDS,
        TAOBAO_COLUMNS,
    ),
    "fraud_log": _Format(iter_csv_text, stage_fraud_log, ISO8601, FRAUD_LOG_COLUMNS),
}
MAPPED: Final = "mapped"
SOURCE_FORMATS: Final[tuple[str, ...]] = (*_FORMATS, MAPPED)


@dataclass(frozen=True)
class SourceReader:
    """One source format with its time options settled; build it with ``source_reader``."""

    source_format: str
    time_format: str
    time_zone: str
    mapping: SourceMapping | None = None

    @property
    def used_columns(self) -> tuple[str, ...]:
        """The source columns this format reads; any other column is ignored (or, for canonical
        landing files, rejected)."""
        if self.mapping is not None:
            return tuple(self.mapping.source_columns)
        return _FORMATS[self.source_format].columns

    @property
    def time_description(self) -> str:
        """The expected time format in words (quarantine reasons name it)."""
        return describe_time_format(self.time_format, self.time_zone)

    def frames(self, path: Path, batch_rows: int | None = None) -> Iterator[pl.DataFrame]:
        """The file's rows as text columns plus ``raw_record``, before mapping."""
        batches = iter_tabular if self.mapping is not None else _FORMATS[self.source_format].batches
        return batches(Path(path), batch_rows=batch_rows)

    def stage(self, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
        """Map rows of ``frame`` (from ``frames``) onto a staged frame."""
        if self.mapping is not None:
            return stage_mapped(frame, Path(path), self.mapping)
        return _FORMATS[self.source_format].stage(
            frame, Path(path), self.time_format, self.time_zone
        )

    def read(self, path: Path) -> pl.DataFrame:
        """The whole file as one staged frame."""
        return pl.concat([self.stage(frame, path) for frame in self.frames(path)])


def _check_time_zone(time_zone: str) -> None:
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"time zone {time_zone!r} is not a known IANA time zone "
            "(e.g. UTC, Europe/Berlin, Asia/Shanghai)"
        ) from error


def source_reader(
    source_format: str,
    mapping: Path | None = None,
    *,
    time_format: str | None = None,
    time_zone: str | None = None,
) -> SourceReader:
    """Validate the format, mapping and time options up front (``ValueError`` / ``MappingError``).

    ``time_format`` / ``time_zone`` default to the format's own (for ``mapped``: the mapping's)
    and override it when given.
    """
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; known: {list(SOURCE_FORMATS)}")
    if time_format is not None:
        check_time_format(time_format)
    if time_zone is not None:
        _check_time_zone(time_zone)
    if source_format == MAPPED:
        if mapping is None:
            raise ValueError("source format 'mapped' needs a mapping file (mapping=...)")
        loaded = load_mapping(Path(mapping))
        timestamp = loaded.timestamp.model_copy(
            update={
                "format": time_format or loaded.timestamp.format,
                "timezone": time_zone or loaded.timestamp.timezone,
            }
        )
        loaded = loaded.model_copy(update={"timestamp": timestamp})
        return SourceReader(MAPPED, timestamp.format, timestamp.timezone, loaded)
    if mapping is not None:
        raise ValueError(f"source format {source_format!r} takes no mapping file; got {mapping}")
    return SourceReader(
        source_format, time_format or _FORMATS[source_format].time_format, time_zone or "UTC"
    )


def read_source(
    source_format: str,
    path: Path,
    mapping: Path | None = None,
    *,
    time_format: str | None = None,
    time_zone: str | None = None,
) -> pl.DataFrame:
    """Read one source file into a staged frame (``STAGED_SCHEMA``: text values + raw_record).

    Raises ``MalformedSourceError`` when the file as a whole is unusable, ``MappingError`` for a
    bad mapping, ``ValueError`` for an unknown format or bad time options.
    """
    return source_reader(source_format, mapping, time_format=time_format, time_zone=time_zone).read(
        Path(path)
    )
