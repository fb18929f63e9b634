"""Time-of-day and timeline helpers shared by normal users and anomalies.

All times inside the simulator are float seconds since midnight UTC of the simulated day; the
day's events must stay inside ``[0, DAY_SECONDS)`` so that every event's UTC date is the
partition day. Timelines are built for many actors at once: per-event gaps are accumulated within
each actor's run of events (``grouped_cumsum``) instead of looping over actors.
"""

from __future__ import annotations

import numpy as np

from anomaly_pipeline.features.catalogue import SESSION_GAP_MINUTES

DAY_SECONDS = 86_400.0
HOUR = 3_600.0
#: Inactivity that ends a session (the usual web-analytics rule; the features' own gap).
SESSION_GAP_S = SESSION_GAP_MINUTES * 60.0

#: Relative activity per local hour 0..23: quiet nights, a lunch bump and an evening peak.
DAYTIME_PROFILE = np.array(
    [
        1.5,
        0.8,
        0.5,
        0.3,
        0.3,
        0.4,
        0.9,
        2.0,
        3.0,
        3.5,
        3.8,
        4.0,
        4.8,
        4.6,
        4.0,
        3.8,
        3.9,
        4.3,
        5.0,
        6.0,
        6.8,
        6.5,
        4.8,
        2.8,
    ]
)
#: Night owls: most activity between 23:00 and 04:00 local time.
NIGHT_OWL_PROFILE = np.array(
    [
        6.0,
        6.5,
        6.0,
        5.0,
        3.5,
        1.5,
        0.6,
        0.4,
        0.4,
        0.5,
        0.7,
        0.8,
        1.0,
        1.0,
        1.0,
        1.0,
        1.2,
        1.4,
        1.8,
        2.2,
        2.8,
        3.5,
        4.5,
        5.5,
    ]
)
#: Automation that runs while humans sleep: 01:00-05:00 local time.
SMALL_HOURS_PROFILE = np.array([0.0, 1.0, 1.0, 1.0, 1.0] + [0.0] * 19)

_PROFILES = np.stack([DAYTIME_PROFILE, NIGHT_OWL_PROFILE, SMALL_HOURS_PROFILE])
_PROFILE_CDF = np.cumsum(_PROFILES, axis=1) / _PROFILES.sum(axis=1, keepdims=True)
DAYTIME, NIGHT_OWL, SMALL_HOURS = 0, 1, 2


def local_times(rng: np.random.Generator, profile: np.ndarray) -> np.ndarray:
    """One local time of day (seconds) per entry of ``profile`` (DAYTIME / NIGHT_OWL / ...)."""
    cdf = _PROFILE_CDF[profile]
    hour = (rng.random(len(profile))[:, None] > cdf).sum(axis=1)
    return (np.minimum(hour, 23) + rng.random(len(profile))) * HOUR


def to_utc(local_seconds: np.ndarray, tz_hours: np.ndarray | float) -> np.ndarray:
    """Local time of day to UTC time of day, wrapping round midnight."""
    return np.mod(local_seconds - tz_hours * HOUR, DAY_SECONDS)


def lognormal(
    rng: np.random.Generator, median: np.ndarray | float, sigma: np.ndarray | float, size: int
) -> np.ndarray:
    """Log-normal draws parameterised by their median (the intuitive "typical" value)."""
    return np.asarray(median) * np.exp(np.asarray(sigma) * rng.standard_normal(size))


def group_starts(counts: np.ndarray) -> np.ndarray:
    """Index of the first row of each group when groups of ``counts`` rows are laid end to end."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.cumsum(counts) - counts


def rank_in_group(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each consecutive group of ``counts`` rows."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(group_starts(counts), counts)


def grouped_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarted at every group of ``counts`` consecutive rows."""
    running = np.cumsum(values)
    before = np.concatenate(([0.0], running))[group_starts(counts)]
    return running - np.repeat(before, counts)


def timeline(starts: np.ndarray, gaps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Event times per actor: actor ``i`` starts at ``starts[i]`` and waits ``gaps`` in between.

    ``gaps`` has one entry per event; the first gap of each actor is ignored (its first event is
    at the start). The whole run is then moved earlier if it would spill past midnight, so that
    an actor who starts late still keeps every event inside the day. A run longer than a day
    still overflows; the event assembler drops what falls past midnight.
    """
    first = group_starts(counts)
    gaps = gaps.astype(np.float64).copy()
    gaps[first[counts > 0]] = 0.0
    offsets = grouped_cumsum(gaps, counts)
    span = np.zeros(len(counts))
    has_events = counts > 0
    span[has_events] = offsets[first[has_events] + counts[has_events] - 1]
    latest_start = np.maximum(DAY_SECONDS - 1.0 - span, 0.0)
    fitted = np.minimum(starts, latest_start)
    return np.repeat(fitted, counts) + offsets


def blend(anomalous: float, normal: float, weight: float) -> float:
    """Linear move from the anomalous value towards the normal one (weight 0 = anomalous)."""
    return anomalous + (normal - anomalous) * weight


def blend_scale(anomalous: float, normal: float, weight: float) -> float:
    """Geometric move for scale parameters (counts, durations), which live on a log axis."""
    return float(np.exp(blend(np.log(anomalous), np.log(normal), weight)))
