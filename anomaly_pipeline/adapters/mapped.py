"""The ``mapped`` format: any CSV / Parquet / JSON Lines file through a ``SourceMapping``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from anomaly_pipeline.adapters.mapping import SourceMapping
from anomaly_pipeline.adapters.readers import require_columns, stringify
from anomaly_pipeline.adapters.staged import to_staged
from anomaly_pipeline.adapters.timestamps import staged_timestamp


def _column_expressions(mapping: SourceMapping) -> list[pl.Expr]:
    expressions = []
    for source, target in mapping.columns.items():
        value = pl.col(source)
        if target == "event_type" and mapping.event_types:
            value = value.str.strip_chars().replace(dict(mapping.event_types))
        if target in mapping.defaults:
            # Blank counts as absent: CSV readers give null for an empty field, JSON keeps "".
            present = pl.when(value.str.strip_chars() != "").then(value)
            value = pl.coalesce(present, pl.lit(mapping.defaults[target]))
        expressions.append(value.alias(target))
    expressions.extend(
        pl.lit(constant, pl.String).alias(target)
        for target, constant in mapping.defaults.items()
        if target not in mapping.columns.values()
    )
    return expressions


def stage_mapped(frame: pl.DataFrame, path: Path, mapping: SourceMapping) -> pl.DataFrame:
    """Map rows read from ``path`` onto a staged frame (times as the mapping says)."""
    require_columns(path, frame, mapping.source_columns, f"named by mapping {mapping.origin}")
    frame = stringify(path, frame, mapping.source_columns, naive_time_zone=mapping.time_zone)
    selected = [
        *_column_expressions(mapping),
        staged_timestamp(
            pl.col(mapping.timestamp.column), mapping.timestamp.format, mapping.time_zone
        ).alias("event_time"),
        pl.col("raw_record"),
    ]
    if mapping.event_id_column is not None:
        selected.append(pl.col(mapping.event_id_column).alias("event_id"))
    return to_staged(frame.select(selected), derive_event_id=mapping.event_id_column is None)
