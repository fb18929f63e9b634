"""A range read, built and written day by day gives the rows of the whole range at once.

``behaviour_sequences`` and ``daily_anomaly_scores`` hold one chunk of days in memory at a time,
all chunks going through one partition writer (``sequences.write_sequences``,
``scoring.write_scores``); these tests run both on a warehouse built by the real dbt project from
simulated days (one day of the range without events) and compare every chunk size with the
whole range in one frame, row for row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dbt_fixtures import build_warehouse, dbt_day_vars, run_dbt
from polars.testing import assert_frame_equal

from anomaly_pipeline import warehouse
from anomaly_pipeline.alert_guard import GUARD_TABLE, GuardLimits, judge_day, verdict_rows
from anomaly_pipeline.bundle import ScoringBundle, finalize_bundle
from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.detectors.registry import make_detector
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, KEY_COLUMNS
from anomaly_pipeline.paths import repo_path
from anomaly_pipeline.policy import load_policy
from anomaly_pipeline.scoring import (
    SCORES_TABLE,
    DayTally,
    GuardInput,
    ModelIdentity,
    score_user_days,
    write_scores,
)
from anomaly_pipeline.sequences import (
    INPUT_COLUMNS,
    SEQUENCE_SCHEMA,
    build_sequences,
    write_sequences,
)
from anomaly_pipeline.simulate import SimulationConfig, simulate
from anomaly_pipeline.training_set import load_user_days

START = date(2024, 4, 1)
EVENT_DAYS = [START + timedelta(days=i) for i in range(3)]
#: The range ends with a day that has no events at all.
DAYS = [*EVENT_DAYS, START + timedelta(days=3)]
EVENTS_TABLE = "features.stg_events"
SEQUENCES_TABLE = "features.behaviour_sequences"
MODEL = ModelIdentity(name="anomaly_detector", version="3", kind="gaussian")
SCORED_AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
FLOATS = ["raw_score", "score"]


@pytest.fixture(scope="module")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = simulate(SimulationConfig(start_day=START, n_days=len(EVENT_DAYS), n_users=120, seed=5))
    path = build_warehouse(tmp_path_factory.mktemp("range"), sim.events, sim.labels)
    run_dbt(["run", "--select", "+user_day_features", *dbt_day_vars(DAYS[0], DAYS[-1])], path)
    return path


def _copy(warehouse_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse_path.read_bytes())
    return copy


@pytest.mark.parametrize(
    ("days_per_chunk", "max_events"), [(1, 10**9), (2, 10**9), (len(DAYS), 10**9), (1, 500)]
)
def test_sequences_day_by_day_are_the_whole_range_row_for_row(
    warehouse_path: Path, tmp_path: Path, days_per_chunk: int, max_events: int
) -> None:
    """Built and written a chunk at a time — and a day in parts of its users when it holds more
    than ``max_events`` events — the stored sequences are ``build_sequences`` of the whole
    range's events, and the per-day counts are theirs; old rows of the range are gone."""
    whole = build_sequences(
        warehouse.read_days(warehouse_path, EVENTS_TABLE, DAYS, columns=list(INPUT_COLUMNS))
    )
    assert set(whole["event_day"]) == set(EVENT_DAYS) and whole["truncated"].any()
    events_per_day = warehouse.count_by_day(warehouse_path, EVENTS_TABLE, EVENT_DAYS)
    assert max_events > 10**6 or min(events_per_day.values()) > 2 * max_events  # parts are built
    copy = _copy(warehouse_path, tmp_path)
    stale = whole.filter(pl.col("event_day") == EVENT_DAYS[0]).head(5)
    warehouse.replace_partitions(copy, SEQUENCES_TABLE, stale, DAYS)
    counts = write_sequences(
        copy,
        DAYS,
        events_table=EVENTS_TABLE,
        sequences_table=SEQUENCES_TABLE,
        days_per_chunk=days_per_chunk,
        max_events=max_events,
    )
    stored = warehouse.read_days(copy, SEQUENCES_TABLE, DAYS).sort(KEY_COLUMNS)
    assert_frame_equal(stored.select(list(SEQUENCE_SCHEMA)), whole, check_exact=True)
    per_day = whole.group_by("event_day").agg(pl.len(), pl.col("truncated").sum())
    expected = {day: (0, 0) for day in DAYS} | {d: (n, t) for d, n, t in per_day.iter_rows()}
    assert counts == expected


@pytest.fixture(scope="module")
def bundle(warehouse_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ScoringBundle:
    """A Gaussian champion fitted on the range's own user-days."""
    population = load_user_days(warehouse_path, DAYS, with_sequences=False)
    detector = make_detector("gaussian", threshold_percentile=90.0)
    detector.fit(feature_matrix(population, FEATURE_COLUMNS), feature_names=list(FEATURE_COLUMNS))
    model_dir = detector.save(tmp_path_factory.mktemp("bundle") / "gaussian")
    finalize_bundle(detector, model_dir, population, categories={})
    return ScoringBundle.load(model_dir)


@pytest.mark.parametrize(("days_per_chunk", "batch_rows"), [(1, 100_000), (1, 37), (2, 100_000)])
def test_scores_day_by_day_are_the_whole_range_row_for_row(
    warehouse_path: Path,
    tmp_path: Path,
    bundle: ScoringBundle,
    days_per_chunk: int,
    batch_rows: int,
) -> None:
    """Scores read and written a chunk of days at a time are one call over the whole range's
    user-days: reasons, flags, outcomes and every other column exactly, raw scores and points
    to 1e-12 (BLAS rounds the last bit by the batch's shape, by how much depends on the CPU
    kernel OpenBLAS picks); each day's tally rows and top users are those of the whole range's
    rows (raw scores to 1e-12), and its guard verdict and stored guard row are the verdict on
    that day's rows alone."""
    policy = load_policy(repo_path("resources/policy.yaml"), FEATURE_COLUMNS)
    whole = score_user_days(
        bundle, load_user_days(warehouse_path, DAYS), policy, MODEL, scored_at=SCORED_AT
    )
    assert whole["flagged"].any() and set(whole["event_day"]) == set(EVENT_DAYS)
    copy = _copy(warehouse_path, tmp_path)
    guard = GuardInput(
        reference=whole["raw_score"].to_numpy()[::2],
        limits=GuardLimits(min_user_days=10),
        threshold_percentile=bundle.detector.threshold_percentile,
    )
    tally, verdicts = write_scores(
        copy,
        DAYS,
        bundle,
        policy,
        MODEL,
        guard,
        scored_at=SCORED_AT,
        batch_rows=batch_rows,
        days_per_chunk=days_per_chunk,
    )
    stored = warehouse.read_days(copy, SCORES_TABLE, DAYS).sort(KEY_COLUMNS)
    assert_frame_equal(stored.drop(FLOATS), whole.drop(FLOATS), check_exact=True)
    assert_frame_equal(stored.select(FLOATS), whole.select(FLOATS), rel_tol=1e-12)
    whole_tally = DayTally()
    whole_tally.add(whole)
    for day in EVENT_DAYS:
        rows, whole_rows = tally.rows(day), whole_tally.rows(day)
        assert_frame_equal(rows.drop("raw_score"), whole_rows.drop("raw_score"), check_exact=True)
        assert_frame_equal(rows.select("raw_score"), whole_rows.select("raw_score"), rel_tol=1e-12)
        assert_frame_equal(
            tally.top(day).drop("score"), whole_tally.top(day).drop("score"), check_exact=True
        )
    expected = {
        day: judge_day(
            day,
            tally.rows(day)["flagged"].to_numpy(),
            tally.rows(day)["raw_score"].to_numpy(),
            guard.reference,
            limits=guard.limits,
            threshold_percentile=guard.threshold_percentile,
        )
        for day in DAYS
    }
    assert verdicts == expected and verdicts[DAYS[-1]].user_days == 0
    stored_guard = warehouse.read_days(copy, GUARD_TABLE, DAYS).sort("event_day")
    assert_frame_equal(
        stored_guard, verdict_rows(list(expected.values()), MODEL.version), check_exact=True
    )


def test_a_range_without_feature_rows_is_refused(
    warehouse_path: Path, bundle: ScoringBundle
) -> None:
    empty_days = [DAYS[-1], DAYS[-1] + timedelta(days=1)]
    policy = load_policy(repo_path("resources/policy.yaml"), FEATURE_COLUMNS)
    guard = GuardInput(np.zeros(3), GuardLimits(), bundle.detector.threshold_percentile)
    with pytest.raises(ValueError, match=r"no feature rows for 2024-04-04\.\.2024-04-05"):
        write_scores(warehouse_path, empty_days, bundle, policy, MODEL, guard)
