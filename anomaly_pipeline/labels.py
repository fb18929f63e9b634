"""One label per user-day from every kind of ground truth, with a fixed precedence.

Two kinds of ground truth reach the warehouse: **source labels** (``labels_<day>*.parquet``:
the simulator's, a history file's 0/1 column, chargebacks — abnormal user-days only, through
``features.stg_labels``) and **analyst verdicts** on alerts (``feedback_<day>*.csv`` →
``raw.analyst_feedback``, see ``anomaly_pipeline.feedback``). Precedence, so that no source
silently overwrites another:

1. an analyst's verdict beats a source label: ``confirmed`` → 1, ``false_positive`` → 0, even
   where a source said abnormal (the analyst looked at this alert; a source label is a rule);
2. among verdicts on one user-day the latest wins: by ``decided_at`` (a verdict without one counts
   as older than any with one), then by file name, then by row — a later file or row corrects
   an earlier one;
3. among source label files of one day (``ingest.load_labels``) a specific anomaly type beats
   ``reported`` (a bare 0/1), and otherwise the file whose name sorts first wins.

A confirmed verdict keeps the source's anomaly type unless the analyst named one; a
false positive has none.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from anomaly_pipeline.features.catalogue import KEY_COLUMNS
from anomaly_pipeline.schema import REPORTED_ANOMALY

#: Where the label of a user-day came from.
ANALYST, SOURCE = "analyst", "source"

LABELS_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_key": pl.String(),
    "event_day": pl.Date(),
    "label": pl.Int8(),
    "anomaly_type": pl.String(),
    "label_source": pl.String(),
}


def source_precedence(labels: pl.DataFrame) -> pl.DataFrame:
    """One source label per (user_id, event_day) from several files' rows (rule 3): a specific
    anomaly type beats ``reported``, then the file (``source_file``) whose name sorts first."""
    return (
        labels.sort(
            pl.col("anomaly_type") == REPORTED_ANOMALY, pl.col("source_file"), maintain_order=True
        )
        .unique(["user_id", "event_day"], keep="first", maintain_order=True)
        .sort(["event_day", "user_id"])
    )


def latest_verdicts(verdicts: pl.DataFrame) -> pl.DataFrame:
    """The verdict that counts per user-day (rule 2): the last by decided_at, file, row."""
    return (
        verdicts.sort(
            ["decided_at", "source_file", "row_number"], nulls_last=False, maintain_order=True
        )
        .group_by(list(KEY_COLUMNS), maintain_order=True)
        .last()
    )


def user_day_labels(source: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """``LABELS_SCHEMA`` rows, one per user-day that a source label or a verdict covers.

    ``source``: ``user_key, event_day, anomaly_type`` (one row per abnormal user-day);
    ``verdicts``: rows of ``raw.analyst_feedback`` (``user_key, event_day, label, anomaly_type,
    decided_at, source_file, row_number``).
    """
    source_rows = source.select(
        pl.col("user_key").cast(pl.String),
        pl.col("event_day").cast(pl.Date),
        pl.col("anomaly_type").cast(pl.String).alias("source_type"),
    )
    latest = latest_verdicts(verdicts).select(
        *KEY_COLUMNS,
        pl.col("label").cast(pl.Int8).alias("verdict_label"),
        pl.col("anomaly_type").cast(pl.String).alias("verdict_type"),
    )
    joined = source_rows.join(latest, on=list(KEY_COLUMNS), how="full", coalesce=True)
    from_analyst = pl.col("verdict_label").is_not_null()
    return joined.select(
        *KEY_COLUMNS,
        label=pl.when(from_analyst).then(pl.col("verdict_label")).otherwise(1).cast(pl.Int8),
        anomaly_type=pl.when(from_analyst & (pl.col("verdict_label") == 0))
        .then(None)
        .otherwise(pl.coalesce("verdict_type", "source_type")),
        label_source=pl.when(from_analyst).then(pl.lit(ANALYST)).otherwise(pl.lit(SOURCE)),
    ).sort(list(KEY_COLUMNS))
