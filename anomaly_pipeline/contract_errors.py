"""Readable contract failures: the file, the day, the column, the rule and a few example values.

Why not pandera's own report: a lazy validation error is a dump of every failure case (for a
uniqueness check, whole rows as JSON), with row numbers of the frame the loader built and nothing
about which landing file or partition day they came from. The person on call needs where to look
and what is wrong; ``validate_or_explain`` gives one line per (file, day, column, rule) with the
number of rows and at most ``MAX_EXAMPLES`` example values, each cut short.
"""

from __future__ import annotations

from typing import Final

import pandera.errors
import pandera.polars as pa
import polars as pl

from anomaly_pipeline.messages import shown

MAX_EXAMPLES: Final = 5
#: Lines of a message; the rest are counted, not listed.
MAX_LINES: Final = 20
#: Columns of ``context``: where each validated row came from.
CONTEXT_COLUMNS: Final = ("source_file", "event_day")


class ContractViolation(ValueError):
    """Rows broke a table's contract; the message says where and how, with a few examples."""


def validate_or_explain(
    schema: pa.DataFrameSchema, frame: pl.DataFrame, *, table: str, context: pl.DataFrame
) -> pl.DataFrame:
    """Validate ``frame`` against ``schema`` (lazily: every failure at once).

    ``context`` has ``CONTEXT_COLUMNS`` for each row of ``frame``, in the same order. Raises
    ``ContractViolation`` naming, per file and day, the column, the rule, the number of rows and
    up to ``MAX_EXAMPLES`` example values.
    """
    try:
        return schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        lines = explain(errors.failure_cases, frame, context, unique=list(schema.unique or []))
        shown_lines = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown_lines.append(f"… and {len(lines) - MAX_LINES} more")
        details = "\n  ".join(shown_lines)
        raise ContractViolation(f"{table} contract failed:\n  {details}") from None


def explain(
    failure_cases: pl.DataFrame, frame: pl.DataFrame, context: pl.DataFrame, *, unique: list[str]
) -> list[str]:
    """One line per (file, day, column, rule) of pandera's ``failure_cases``."""
    located = failure_cases.select(
        pl.col("index").cast(pl.Int64),
        pl.col("column"),
        pl.col("check"),
        pl.col("failure_case").cast(pl.String),
    ).join(
        context.select(CONTEXT_COLUMNS)
        .with_row_index("index")
        .with_columns(pl.col("index").cast(pl.Int64)),
        on="index",
        how="left",
    )
    groups = located.group_by([*CONTEXT_COLUMNS, "column", "check"], maintain_order=True).agg(
        pl.len().alias("rows"),
        pl.col("index").head(MAX_EXAMPLES).alias("indices"),
        pl.col("failure_case").head(MAX_EXAMPLES).alias("cases"),
    )
    lines = []
    for group in groups.iter_rows(named=True):
        columns = [group["column"]] if group["column"] in frame.columns else unique
        where = (
            f"file {group['source_file']}, day {group['event_day']}"
            if group["source_file"] is not None
            else "the whole frame"
        )
        lines.append(
            f"{where}: column {', '.join(columns) or shown(group['column'])} fails "
            f"{group['check']} on {group['rows']} row(s), e.g. "
            f"{_examples(frame, columns, group['indices'], group['cases'])}"
        )
    return lines


def _examples(
    frame: pl.DataFrame, columns: list[str], indices: list[int | None], cases: list[str | None]
) -> str:
    """Example values: from the frame's rows where known (uniqueness names the key), else the
    failure case pandera reported (a missing column, a wrong type)."""
    examples = []
    for index, case in zip(indices, cases, strict=True):
        if index is None or not columns:
            examples.append(shown(case))
        elif len(columns) == 1:
            examples.append(shown(frame[index, columns[0]]))
        else:
            examples.append(", ".join(f"{c}={shown(frame[index, c])}" for c in columns))
    return "[" + ", ".join(dict.fromkeys(examples)) + "]"
