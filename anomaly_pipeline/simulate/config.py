"""What a simulation run looks like: window, population size, anomaly mix, difficulty and drift.

The config is the whole input of the simulator: the same config always yields the same frames, so
it doubles as the key of a reproducible data set. It is validated on construction because a bad
knob (a share above 1, an unknown anomaly type) would otherwise surface much later as a puzzling
label count or an empty detector input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

from anomaly_pipeline.schema import ANOMALY_TYPES

#: Widths of the fields packed into a 64-bit event key (see ``ids.py``); the config must keep the
#: numbers of users (population plus fresh fraud accounts) inside them.
USER_NUMBER_BITS = 28


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of one simulated data set (all days are UTC days).

    ``anomaly_share`` is the share of active user-days that are abnormal; ``difficulty`` (0 =
    blatant, 1 = almost like normal users) scales every anomaly's signature and
    ``difficulty_by_type`` overrides it per anomaly type. From ``drift_from`` on, normal dwell
    times and inactivity gaps are multiplied by ``drift_dwell_factor`` and part of the traffic
    arrives through ``drift_new_channel``.
    """

    start_day: date = date(2026, 11, 1)
    n_days: int = 14
    n_users: int = 2000
    anomaly_share: float = 0.03
    anomaly_types: tuple[str, ...] = ANOMALY_TYPES
    difficulty: float = 0.3
    difficulty_by_type: Mapping[str, float] = field(default_factory=dict)
    seed: int = 7
    drift_from: date | None = None
    drift_dwell_factor: float = 0.5
    drift_new_channel: str = "AppStore"

    def __post_init__(self) -> None:
        _require(isinstance(self.start_day, date), "start_day", "must be a datetime.date")
        _require(self.n_days >= 1, "n_days", f"must be >= 1, got {self.n_days}")
        _require(self.n_users >= 1, "n_users", f"must be >= 1, got {self.n_users}")
        _require(
            self.n_users * (self.n_days + 1) < 2**USER_NUMBER_BITS,
            "n_users",
            f"n_users * (n_days + 1) must stay below 2**{USER_NUMBER_BITS} "
            f"(population plus fresh fraud accounts), got {self.n_users * (self.n_days + 1)}",
        )
        _require(
            0.0 <= self.anomaly_share < 1.0,
            "anomaly_share",
            f"must be in [0, 1), got {self.anomaly_share}",
        )
        unknown = sorted(set(self.anomaly_types) - set(ANOMALY_TYPES))
        _require(not unknown, "anomaly_types", f"unknown type(s) {unknown}; known: {ANOMALY_TYPES}")
        _require(
            len(set(self.anomaly_types)) == len(self.anomaly_types),
            "anomaly_types",
            f"must not repeat a type, got {self.anomaly_types}",
        )
        _require(
            bool(self.anomaly_types) or self.anomaly_share == 0.0,
            "anomaly_types",
            "must name at least one type when anomaly_share > 0",
        )
        _require(
            0.0 <= self.difficulty <= 1.0, "difficulty", f"must be in [0, 1], got {self.difficulty}"
        )
        for name, value in self.difficulty_by_type.items():
            _require(
                name in ANOMALY_TYPES,
                "difficulty_by_type",
                f"unknown anomaly type {name!r}; known: {ANOMALY_TYPES}",
            )
            _require(
                0.0 <= value <= 1.0,
                "difficulty_by_type",
                f"{name!r} must be in [0, 1], got {value}",
            )
        _require(
            self.drift_dwell_factor > 0.0,
            "drift_dwell_factor",
            f"must be > 0, got {self.drift_dwell_factor}",
        )
        _require(bool(self.drift_new_channel), "drift_new_channel", "must be a non-empty string")
        # A read-only copy: the config is frozen and must stay so even if the caller's dict changes.
        object.__setattr__(
            self, "difficulty_by_type", MappingProxyType(dict(self.difficulty_by_type))
        )
        object.__setattr__(self, "anomaly_types", tuple(self.anomaly_types))

    @property
    def days(self) -> tuple[date, ...]:
        """Every simulated UTC day, in order."""
        return tuple(self.start_day + timedelta(days=i) for i in range(self.n_days))

    def day_index(self, day: date) -> int:
        """Position of ``day`` in the window; raises ``ValueError`` outside it."""
        index = (day - self.start_day).days
        if not 0 <= index < self.n_days:
            raise ValueError(
                f"day {day} is outside the simulated window {self.start_day}..{self.days[-1]}"
            )
        return index

    def difficulty_of(self, anomaly_type: str) -> float:
        """The difficulty that applies to one anomaly type (override, else the global one)."""
        return float(self.difficulty_by_type.get(anomaly_type, self.difficulty))

    def drifted(self, day: date) -> bool:
        """Whether ``day`` lies on or after ``drift_from``."""
        return self.drift_from is not None and day >= self.drift_from


def _require(condition: bool, field_name: str, rule: str) -> None:
    if not condition:
        raise ValueError(f"SimulationConfig.{field_name} {rule}")
