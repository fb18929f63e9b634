"""The staged frame: what every adapter returns and what cleaning consumes.

Adapters map a source onto the canonical column *names* of ``anomaly_pipeline.schema`` but keep
every value as a raw string, plus ``raw_record`` (the original row as JSON text). Parsing is left
to cleaning on purpose: an unparsable value then quarantines one row with a precise reason instead
of failing the whole file. Only problems that make the *file* unusable (unreadable, wrong columns)
are raised here, as ``MalformedSourceError``.
"""

from __future__ import annotations

import hashlib
from typing import Final

import polars as pl

from anomaly_pipeline.schema import RAW_EVENT_COLUMNS

STAGED_SCHEMA: Final[dict[str, pl.DataType]] = {
    **{name: pl.String() for name in RAW_EVENT_COLUMNS},
    "raw_record": pl.String(),
}


class MalformedSourceError(ValueError):
    """A whole source file is unusable; the message names the file and what is wrong."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"malformed source file {path}: {problem}")
        self.path = path
        self.problem = problem


def _blake2b_hex(values: pl.Series) -> pl.Series:
    # A cryptographic digest rather than polars' ``hash``: ids are persisted in the warehouse and
    # polars documents its hash as unstable across versions.
    return pl.Series(
        values.name,
        [hashlib.blake2b(v.encode(), digest_size=16).hexdigest() for v in values.to_list()],
        dtype=pl.String,
    )


def _content_event_id() -> pl.Expr:
    # Hashing the mapped content rather than the raw bytes gives identical events identical ids
    # whatever file format they came in, so cleaning's duplicate rule removes repeats (a row
    # delivered twice) instead of counting them as two events.
    content = [name for name in RAW_EVENT_COLUMNS if name != "event_id"]
    return (
        pl.struct(content)
        .struct.json_encode()
        .map_batches(_blake2b_hex, return_dtype=pl.String)
        .alias("event_id")
    )


def to_staged(frame: pl.DataFrame, *, derive_event_id: bool = False) -> pl.DataFrame:
    """Select the staged columns in order, casting to string and adding absent ones as nulls.

    With ``derive_event_id`` the event id is a stable digest of the event's canonical content
    (every column but event_id), for sources that carry no id of their own. ``frame`` must hold
    ``raw_record`` and the required canonical columns; the adapters build those, so a missing
    one is a programming error and raises ``ValueError``.
    """
    required = ["event_time", "user_id", "event_type", "raw_record"]
    if not derive_event_id:
        required.append("event_id")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(f"staged frame lacks required column(s) {missing}; has {frame.columns}")
    staged = frame.select(
        pl.col(name).cast(pl.String)
        if name in frame.columns
        else pl.lit(None, pl.String).alias(name)
        for name in STAGED_SCHEMA
    )
    return staged.with_columns(_content_event_id()) if derive_event_id else staged
