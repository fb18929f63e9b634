"""What onboarding found, read back from the warehouse after the runs (domain core, no Dagster).

Counts come from the tables the runs wrote, restricted to the day files this source produced, so
the summary shows what the pipeline holds rather than what onboarding meant to write.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from anomaly_pipeline import warehouse
from anomaly_pipeline.ingest import QUARANTINE_TABLE, RAW_EVENTS_TABLE
from anomaly_pipeline.scoring import SCORES_TABLE

TOP_USER_DAYS = 10


@dataclass(frozen=True)
class Champion:
    """The model that scored the days and why it is the champion."""

    model: str  # e.g. "isolation_forest v3", or "none"
    reason: str  # the champion gate's verdict


@dataclass(frozen=True)
class IngestCounts:
    accepted: int
    quarantined: dict[str, int]
    undated_reason: str | None

    @property
    def total_quarantined(self) -> int:
        return sum(self.quarantined.values())


def ingest_counts(warehouse_path: Path, days: list[date], files: list[str]) -> IngestCounts:
    """Accepted and quarantined events of ``files`` (this source's day files) over ``days``."""
    window = "event_day BETWEEN ? AND ? AND list_contains(?, source_file)"
    arguments = [days[0], days[-1], files]
    with warehouse.connect(warehouse_path, read_only=True) as conn:
        counted = conn.execute(
            f"SELECT count(*) FROM {RAW_EVENTS_TABLE} WHERE {window}", arguments
        ).fetchone()
        accepted = counted[0] if counted else 0
        quarantined = dict(
            conn.execute(
                f"SELECT rule, count(*) AS n FROM {QUARANTINE_TABLE} WHERE {window} "
                "GROUP BY rule ORDER BY n DESC, rule",
                arguments,
            ).fetchall()
        )
        sample = conn.execute(
            f"SELECT reason FROM {QUARANTINE_TABLE} WHERE {window} AND rule = 'bad_event_time' "
            "LIMIT 1",
            arguments,
        ).fetchone()
    return IngestCounts(accepted, quarantined, sample[0] if sample else None)


def score_lines(warehouse_path: Path, days: list[date], guard_table: str) -> list[str]:
    """Days scored, the flagged share per day (min / median / max), the days whose alerts the
    alert guard (``guard_table``) withheld, and the top user-days."""
    with warehouse.connect(warehouse_path, read_only=True) as conn:
        if not warehouse.table_exists(conn, SCORES_TABLE):
            return ["Scores: none (no day was scored)"]
        withheld = (
            conn.execute(
                f"SELECT reason FROM {guard_table} WHERE event_day BETWEEN ? AND ? "
                "AND NOT passed ORDER BY event_day",
                [days[0], days[-1]],
            ).fetchall()
            if warehouse.table_exists(conn, guard_table)
            else []
        )
        per_day = conn.execute(
            f"SELECT event_day, avg(flagged::INT), count(*) FROM {SCORES_TABLE} "
            "WHERE event_day BETWEEN ? AND ? GROUP BY event_day ORDER BY event_day",
            [days[0], days[-1]],
        ).fetchall()
        top = conn.execute(
            f"SELECT user_key, event_day, score, outcome, reasons FROM {SCORES_TABLE} "
            "WHERE event_day BETWEEN ? AND ? ORDER BY score DESC, user_key, event_day LIMIT ?",
            [days[0], days[-1], TOP_USER_DAYS],
        ).fetchall()
    if not per_day:
        return ["Scores: none (no day was scored)"]
    shares = [share for _, share, _ in per_day]
    user_days = sum(n for _, _, n in per_day)
    lines = [
        f"Scores: {len(per_day)} of {len(days)} days, {user_days:,} user-days",
        f"Flagged share per day: min {min(shares):.1%} / median "
        f"{statistics.median(shares):.1%} / max {max(shares):.1%}",
        f"Alert guard: alerts withheld on {len(withheld)} of {len(per_day)} days"
        + (f", e.g. {withheld[0][0]}" if withheld else ""),
        f"Top {len(top)} user-days (pseudonymised user key, day, score 0-1000, outcome, reasons):",
    ]
    for user_key, day, score, outcome, reasons in top:
        lines.append(
            f"  {user_key[:12]}  {day}  {score:6.1f}  {outcome:<6}  {'; '.join(reasons or [])}"
        )
    return lines


def ingest_lines(counts: IngestCounts, *, events: int, undated: int) -> list[str]:
    reasons = ", ".join(f"{rule} {n:,}" for rule, n in counts.quarantined.items()) or "none"
    lines = [
        f"Events: {events:,} in, {counts.accepted:,} accepted, "
        f"{counts.total_quarantined:,} quarantined ({reasons})"
    ]
    if counts.accepted + counts.total_quarantined != events:
        lines.append(
            f"  WARNING: accepted + quarantined = "
            f"{counts.accepted + counts.total_quarantined:,}, not the {events:,} events "
            "written (another load of these days replaced them?)"
        )
    if undated:
        lines.append(
            f"  {undated:,} events had no readable time and were quarantined with the "
            f"first day, e.g.: {counts.undated_reason}"
        )
    return lines
