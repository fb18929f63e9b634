"""The ``canonical`` format: files already in the canonical columns (the simulator's Parquet).

Typed Parquet columns are cast to text losslessly (timestamps to staged ISO-8601 in UTC); CSV and
JSON Lines are read as text. Naive timestamps are UTC, the contract's time zone. The columns must
be canonical ones: an unknown column means the file is some other format, not a canonical file
with extras, so it is rejected rather than silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from anomaly_pipeline.adapters.readers import read_tabular, require_columns, stringify
from anomaly_pipeline.adapters.staged import MalformedSourceError, to_staged
from anomaly_pipeline.adapters.timestamps import ISO8601, staged_timestamp
from anomaly_pipeline.schema import RAW_EVENT_COLUMNS

REQUIRED_COLUMNS = ("event_id", "event_time", "user_id", "event_type")


def read_canonical(path: Path) -> pl.DataFrame:
    """Read a canonical CSV / Parquet / JSON Lines file into a staged frame."""
    frame = read_tabular(path)
    columns = [name for name in frame.columns if name != "raw_record"]
    require_columns(path, frame, REQUIRED_COLUMNS, "required by the canonical format")
    unknown = [name for name in columns if name not in RAW_EVENT_COLUMNS]
    if unknown:
        raise MalformedSourceError(path, f"has non-canonical column(s) {unknown}; "
                                         f"canonical columns are {list(RAW_EVENT_COLUMNS)}")
    frame = stringify(path, frame, columns).with_columns(
        staged_timestamp(pl.col("event_time"), ISO8601)
    )
    return to_staged(frame)
