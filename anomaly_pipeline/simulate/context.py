"""Everything a generator needs to produce one day's events, bundled once per day."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomaly_pipeline.simulate.catalogue import Catalogue
from anomaly_pipeline.simulate.identity import StringTable
from anomaly_pipeline.simulate.population import Population


@dataclass(frozen=True)
class DayContext:
    """Per-day state: the day's random stream, the shared population and catalogue, and drift.

    ``strings`` is a per-day copy of the population's string table, so that ids invented on one
    day (an attacker's device) never leak into another day's table and every day is independent.
    """

    day_index: int
    rng: np.random.Generator
    population: Population
    catalogue: Catalogue
    strings: StringTable
    dwell_factor: float  # 1 before drift, ``drift_dwell_factor`` after
    drift_channel: int  # code of the drift channel, -1 before drift
