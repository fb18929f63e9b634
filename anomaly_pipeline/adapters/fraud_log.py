"""The ``fraud_log`` format: a "signup + purchase" CSV as in the public e-commerce fraud data set.

Header columns user_id, signup_time, purchase_time, purchase_value, device_id, source, browser,
ip_address (sex, age and any others, e.g. a fraud label, are ignored here but kept in
``raw_record``; labels reach the pipeline only through the labels asset). Each row becomes two
events: a signup at signup_time and a purchase (quantity 1) at purchase_time. Times are ISO-8601
by default (exports also come as e.g. ``%m/%d/%Y %H:%M``: pass the source's time format); times
without an offset are in the source's time zone, UTC unless told, since the data set states none.

``ip_address`` is either dotted text or, as in the public data set, an IPv4 address encoded as a
number (stored there as a float with a spurious fraction, e.g. ``732758368.79972``). Numeric text
is floored and rendered as a dotted quad; anything else passes through for cleaning to judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.readers import require_columns
from anomaly_pipeline.adapters.staged import to_staged
from anomaly_pipeline.adapters.timestamps import ISO8601, staged_timestamp

FRAUD_LOG_COLUMNS: Final[tuple[str, ...]] = (
    "user_id",
    "signup_time",
    "purchase_time",
    "purchase_value",
    "device_id",
    "source",
    "browser",
    "ip_address",
)

_NUMERIC: Final = r"^\d+(\.\d*)?$"
_IPV4_LIMIT: Final = 2**32


def dotted_ipv4(text: pl.Expr) -> pl.Expr:
    """Numeric IPv4 text → dotted quad; other text (dotted, IPv6, garbage) is returned as is."""
    stripped = text.str.strip_chars()
    number = stripped.cast(pl.Float64, strict=False).floor().cast(pl.Int64, strict=False)
    octets = [(number // 256**shift % 256).cast(pl.String) for shift in (3, 2, 1, 0)]
    is_encoded = stripped.str.contains(_NUMERIC) & (number < _IPV4_LIMIT)
    return pl.when(is_encoded).then(pl.concat_str(octets, separator=".")).otherwise(text)


def stage_fraud_log(
    frame: pl.DataFrame, path: Path, time_format: str = ISO8601, time_zone: str = "UTC"
) -> pl.DataFrame:
    """Stage rows of a signup + purchase CSV (two events per row, in row order)."""
    require_columns(path, frame, FRAUD_LOG_COLUMNS, "required by the fraud_log format")
    shared = {
        "user_id": pl.col("user_id"),
        "device_id": pl.col("device_id"),
        "channel": pl.col("source"),
        "user_agent": pl.col("browser"),
        "ip": dotted_ipv4(pl.col("ip_address")),
        "raw_record": pl.col("raw_record"),
    }
    rows = frame.with_row_index("row")
    signups = rows.select(
        "row",
        **shared,
        event_type=pl.lit("signup"),
        event_time=staged_timestamp(pl.col("signup_time"), time_format, time_zone),
    )
    purchases = rows.select(
        "row",
        **shared,
        event_type=pl.lit("purchase"),
        event_time=staged_timestamp(pl.col("purchase_time"), time_format, time_zone),
        amount=pl.col("purchase_value"),
        quantity=pl.lit("1"),
    )
    events = pl.concat([signups, purchases], how="diagonal").sort("row", maintain_order=True)
    return to_staged(events, derive_event_id=True)
