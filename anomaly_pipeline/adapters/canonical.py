"""The ``canonical`` format: files already in the canonical columns (the simulator's Parquet).

Typed Parquet timestamps are instants already (naive ones are wall-clock times in the source's
time zone, UTC by default) and are staged losslessly; text timestamps (CSV, JSON Lines, string
columns) are parsed with the source's time format, ISO-8601 by default. The columns must be
canonical ones: an unknown column means the file is some other format, not a canonical file with
extras, so it is rejected rather than silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from anomaly_pipeline.adapters.readers import require_columns, stringify
from anomaly_pipeline.adapters.staged import MalformedSourceError, to_staged
from anomaly_pipeline.adapters.timestamps import ISO8601, staged_timestamp
from anomaly_pipeline.schema import RAW_EVENT_COLUMNS

REQUIRED_COLUMNS = ("event_id", "event_time", "user_id", "event_type")


def stage_canonical(
    frame: pl.DataFrame, path: Path, time_format: str = ISO8601, time_zone: str = "UTC"
) -> pl.DataFrame:
    """Stage a frame read from a canonical CSV / Parquet / JSON Lines file."""
    columns = [name for name in frame.columns if name != "raw_record"]
    require_columns(path, frame, REQUIRED_COLUMNS, "required by the canonical format")
    unknown = [name for name in columns if name not in RAW_EVENT_COLUMNS]
    if unknown:
        raise MalformedSourceError(
            path,
            f"has non-canonical column(s) {unknown}; "
            f"canonical columns are {list(RAW_EVENT_COLUMNS)}",
        )
    typed = isinstance(frame.schema["event_time"], pl.Datetime)
    frame = stringify(path, frame, columns, naive_time_zone=time_zone).with_columns(
        staged_timestamp(pl.col("event_time"), ISO8601 if typed else time_format, time_zone)
    )
    return to_staged(frame)
