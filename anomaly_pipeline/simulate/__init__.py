"""Seeded, deterministic simulator of normal and abnormal e-commerce behaviour, with labels.

``simulate(config)`` returns a window of canonical raw events plus ground-truth labels,
``simulate_day`` one day of it, and ``write_landing`` drops them as daily landing files, so the
whole pipeline runs without outside data. ``python -m anomaly_pipeline.simulate`` does both.
"""

from anomaly_pipeline.simulate.config import SimulationConfig
from anomaly_pipeline.simulate.core import Simulation, simulate, simulate_day
from anomaly_pipeline.simulate.landing import write_landing

__all__ = ["Simulation", "SimulationConfig", "simulate", "simulate_day", "write_landing"]
