"""Drop a simulation as daily landing files, the way an upstream system would deliver them.

One Parquet file per UTC day and source (``events_YYYY-MM-DD.parquet``,
``labels_YYYY-MM-DD.parquet``). Each file is written to a temporary name in the same directory
and renamed over the target, so a reader (the ``raw_events`` sensor or asset) never sees a
half-written file and re-running the simulator simply replaces the day.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from anomaly_pipeline.landing import write_parquet_atomic
from anomaly_pipeline.simulate.core import Simulation

EVENTS_PREFIX = "events_"
LABELS_PREFIX = "labels_"


def landing_file(directory: Path, prefix: str, day: date) -> Path:
    """``directory/<prefix>YYYY-MM-DD.parquet``."""
    return directory / f"{prefix}{day.isoformat()}.parquet"


def write_landing(sim: Simulation, events_dir: Path, labels_dir: Path) -> list[Path]:
    """Write every simulated day's events and labels; return the paths (events, labels per day).

    A labels file is written for every day, empty (with the schema) when the day has no abnormal
    user, so that "no anomalies" is distinguishable from "labels not delivered yet".
    """
    events_dir, labels_dir = Path(events_dir), Path(labels_dir)
    events_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    event_day = pl.col("event_time").dt.date()
    written: list[Path] = []
    for day in sim.days:
        for frame, target in (
            (sim.events.filter(event_day == day), landing_file(events_dir, EVENTS_PREFIX, day)),
            (
                sim.labels.filter(pl.col("event_day") == day),
                landing_file(labels_dir, LABELS_PREFIX, day),
            ),
        ):
            write_parquet_atomic(frame, target)
            written.append(target)
    return written
