"""The ``taobao`` format: the public Taobao UserBehavior CSV (Tianchi data set 649).

No header; columns user_id, item_id, category_id, behavior_type, timestamp (Unix seconds, UTC,
unless the source's time format says otherwise).
The source has no event id, so it is derived from the event's content: identical rows are the
same event and cleaning quarantines the repeats as duplicates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.staged import to_staged
from anomaly_pipeline.adapters.timestamps import UNIX_SECONDS, staged_timestamp

TAOBAO_COLUMNS: Final[tuple[str, ...]] = (
    "user_id",
    "item_id",
    "category_id",
    "behavior_type",
    "timestamp",
)

#: Taobao behaviour codes → canonical event types; other codes pass through and are quarantined.
BEHAVIOUR_TO_EVENT_TYPE: Final[dict[str, str]] = {
    "pv": "view",
    "cart": "cart",
    "fav": "fav",
    "buy": "purchase",
}


def stage_taobao(
    frame: pl.DataFrame, path: Path, time_format: str = UNIX_SECONDS, time_zone: str = "UTC"
) -> pl.DataFrame:
    """Stage rows of a Taobao UserBehavior CSV (one event per row); ``path`` is unused."""
    return to_staged(
        frame.with_columns(
            event_type=pl.col("behavior_type").str.strip_chars().replace(BEHAVIOUR_TO_EVENT_TYPE),
            event_time=staged_timestamp(pl.col("timestamp"), time_format, time_zone),
        ),
        derive_event_id=True,
    )
