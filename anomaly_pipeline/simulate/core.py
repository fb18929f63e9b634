"""Simulate whole windows or single days: who is active, who is abnormal, and their events.

Each day draws from its own random stream, seeded by (seed, day), on top of a population drawn
from the seed alone. A day therefore never depends on the days before it, which is what makes
``simulate_day`` equal to the matching slice of ``simulate`` and lets a backfill regenerate one
partition on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from anomaly_pipeline.simulate.anomalies import ADDED_TYPES, FRESH_ACCOUNT_TYPES, INJECTORS
from anomaly_pipeline.simulate.catalogue import Catalogue
from anomaly_pipeline.simulate.config import SimulationConfig
from anomaly_pipeline.simulate.context import DayContext
from anomaly_pipeline.simulate.events import EventBatch, labels_frame, to_frame
from anomaly_pipeline.simulate.normal import normal_day
from anomaly_pipeline.simulate.population import Population, build_population

_CATALOGUE_STREAM = 1  # population uses stream 0; days use their ordinal (> 700 000)


@dataclass(frozen=True)
class Simulation:
    """Simulated raw events (``RAW_EVENT_SCHEMA``, sorted by event_time) and their labels
    (``LABEL_SCHEMA``: one row per abnormal user-day)."""

    events: pl.DataFrame
    labels: pl.DataFrame

    @property
    def days(self) -> list[date]:
        """The UTC days that have events or labels, in order."""
        event_days = self.events.get_column("event_time").dt.date()
        return sorted(
            set(event_days.unique().to_list())
            | set(self.labels.get_column("event_day").unique().to_list())
        )


@dataclass(frozen=True)
class _World:
    """What stays the same across the days of one config."""

    config: SimulationConfig
    population: Population
    catalogue: Catalogue


def simulate(config: SimulationConfig) -> Simulation:
    """Every day of the configured window."""
    world = _world(config)
    days = [_simulate_day(world, day) for day in config.days]
    return Simulation(
        events=pl.concat([d.events for d in days]), labels=pl.concat([d.labels for d in days])
    )


def simulate_day(config: SimulationConfig, day: date) -> Simulation:
    """One day of the window; identical to that day's slice of ``simulate(config)``."""
    config.day_index(day)  # fail fast, before building the population, on a day outside
    return _simulate_day(_world(config), day)


def _world(config: SimulationConfig) -> _World:
    return _World(
        config,
        build_population(config),
        Catalogue.build(np.random.default_rng([config.seed, _CATALOGUE_STREAM])),
    )


def _simulate_day(world: _World, day: date) -> Simulation:
    config, pop = world.config, world.population
    index = config.day_index(day)
    rng = np.random.default_rng([config.seed, day.toordinal()])
    strings = pop.strings.copy()
    drifted = config.drifted(day)
    ctx = DayContext(
        day_index=index,
        rng=rng,
        population=pop,
        catalogue=world.catalogue,
        strings=strings,
        dwell_factor=config.drift_dwell_factor if drifted else 1.0,
        drift_channel=int(strings.add([config.drift_new_channel])[0]) if drifted else -1,
    )

    exists = pop.signup_day <= index
    # Signing up and making the first purchase are events that must happen on their day.
    milestone = (pop.signup_day == index) | (pop.first_purchase_day == index)
    active = np.flatnonzero(exists & ((rng.random(pop.n_users) < pop.p_active) | milestone))
    cast = _cast_anomalies(config, ctx, active, milestone)

    batches = [normal_day(ctx, cast.normal_users)]
    for anomaly_type, actors in cast.actors.items():
        if len(actors):
            batches.append(INJECTORS[anomaly_type](ctx, actors, config.difficulty_of(anomaly_type)))
    events = to_frame(EventBatch.concat(batches), day, strings)
    labels = labels_frame(
        np.concatenate([np.empty(0, np.int64), *cast.actors.values()]),
        [name for name, actors in cast.actors.items() for _ in range(len(actors))],
        day,
    )
    return Simulation(events=events, labels=labels)


@dataclass(frozen=True)
class _Cast:
    normal_users: np.ndarray  # population users behaving normally today
    actors: dict[str, np.ndarray]  # anomaly type -> abnormal accounts today


def _cast_anomalies(
    config: SimulationConfig, ctx: DayContext, active: np.ndarray, milestone: np.ndarray
) -> _Cast:
    """Pick today's abnormal user-days: ``anomaly_share`` of the active user-days, split evenly
    across the configured types.

    Takeovers hit established active users (whose own activity stays); bots, scrapers, brushing
    rings and fake reviewers are active accounts whose day is replaced; coupon abusers are fresh
    accounts, and as many active users sit the day out so that the share stays as configured.
    Users at a signup / first-purchase milestone are never picked, to keep those journeys intact.
    """
    rng, pop = ctx.rng, ctx.population
    types = config.anomaly_types
    total = rng.binomial(len(active), config.anomaly_share) if types else 0
    wanted = dict(zip(types, _even_split(rng, total, len(types)), strict=True))
    candidates = rng.permutation(active[~milestone[active]])
    established = pop.established(ctx.day_index)[candidates]
    taken = np.zeros(len(candidates), dtype=bool)  # abnormal today, or sitting it out
    kept = np.zeros(len(candidates), dtype=bool)  # ...but still living their own day

    def take(count: int, eligible: np.ndarray) -> np.ndarray:
        chosen = np.flatnonzero(eligible & ~taken)[:count]
        taken[chosen] = True
        return chosen

    actors: dict[str, np.ndarray] = {}
    # Takeovers first: they need established users, the scarcest kind of candidate.
    for anomaly_type in sorted(types, key=lambda name: name not in ADDED_TYPES):
        if anomaly_type in FRESH_ACCOUNT_TYPES:
            continue
        chosen = take(
            wanted[anomaly_type],
            established if anomaly_type in ADDED_TYPES else np.ones_like(taken),
        )
        kept[chosen] = anomaly_type in ADDED_TYPES
        actors[anomaly_type] = np.sort(candidates[chosen])
    next_account = pop.n_users * (1 + ctx.day_index)  # fresh ids never collide across days
    for anomaly_type in types:
        if anomaly_type in FRESH_ACCOUNT_TYPES:
            sitting_out = take(wanted[anomaly_type], np.ones_like(taken))
            actors[anomaly_type] = next_account + np.arange(len(sitting_out), dtype=np.int64)
            next_account += len(sitting_out)
    away = candidates[taken & ~kept]
    return _Cast(
        normal_users=active[~np.isin(active, away)], actors={name: actors[name] for name in types}
    )


def _even_split(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """``total`` split into ``parts`` counts that differ by at most one, the larger ones at
    random, so that every type shows up every day as soon as there are enough anomalies."""
    if parts == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.full(parts, total // parts, dtype=np.int64)
    counts[rng.permutation(parts)[: total % parts]] += 1
    return counts
