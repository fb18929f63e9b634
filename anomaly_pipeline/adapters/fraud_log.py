"""The ``fraud_log`` format: a "signup + purchase" CSV as in the public e-commerce fraud data set.

Header columns user_id, signup_time, purchase_time, purchase_value, device_id, source, browser,
ip_address (sex, age and any others, e.g. a fraud label, are ignored here but kept in
``raw_record``; labels reach the pipeline only through the labels asset). Each row becomes two
events: a signup at signup_time and a purchase (quantity 1) at purchase_time. Times without an
offset are UTC, since the data set states no time zone.

``ip_address`` is either dotted text or, as in the public data set, an IPv4 address encoded as a
number (stored there as a float with a spurious fraction, e.g. ``732758368.79972``). Numeric text
is floored and rendered as a dotted quad; anything else passes through for cleaning to judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.readers import read_csv_text, require_columns
from anomaly_pipeline.adapters.staged import to_staged
from anomaly_pipeline.adapters.timestamps import ISO8601, staged_timestamp

FRAUD_LOG_COLUMNS: Final[tuple[str, ...]] = (
    "user_id", "signup_time", "purchase_time", "purchase_value", "device_id", "source", "browser",
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


def read_fraud_log(path: Path) -> pl.DataFrame:
    """Read a signup + purchase CSV into a staged frame (two events per row, in row order)."""
    frame = read_csv_text(path)
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
        "row", **shared,
        event_type=pl.lit("signup"),
        event_time=staged_timestamp(pl.col("signup_time"), ISO8601),
    )
    purchases = rows.select(
        "row", **shared,
        event_type=pl.lit("purchase"),
        event_time=staged_timestamp(pl.col("purchase_time"), ISO8601),
        amount=pl.col("purchase_value"),
        quantity=pl.lit("1"),
    )
    events = pl.concat([signups, purchases], how="diagonal").sort("row", maintain_order=True)
    return to_staged(events, derive_event_id=True)
