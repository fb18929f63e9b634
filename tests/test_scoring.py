"""The scoring seam without Dagster: detector → 0–1000 scale → reasons → policy → score rows.

A Gaussian detector is fitted on a synthetic population of user-days (every feature of the
contract, from ``test_reasons``), its bundle is finished and saved the way ``baseline_models``
does it (``finalize_bundle``) and loaded back, then ``score_user_days`` scores normal rows next to
rows made abnormal on purpose. Each test asserts one promise of the score table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from feature_population import population_frame, typical_row
from polars.testing import assert_frame_equal

from anomaly_pipeline.bundle import ScoringBundle, finalize_bundle
from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.detectors.registry import make_detector
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.paths import repo_path
from anomaly_pipeline.policy import Policy, load_policy
from anomaly_pipeline.scoring import (
    SCORE_SCHEMA,
    DayTally,
    ModelIdentity,
    score_batches,
    score_user_days,
)

MODEL = ModelIdentity(name="anomaly_detector", version="7", kind="gaussian")
SCORED_AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
DEFAULT_POLICY = repo_path("resources/policy.yaml")
#: Rows made abnormal on purpose, each with the reason codes of the features made abnormal (the
#: detector's contributions decide which of them leads; a new feature may tip that balance).
ABNORMAL = {
    "view_rate": ({"views_per_active_minute": 60.0}, {"high_view_rate"}),
    "networks": (
        {"distinct_ips": 8.0, "distinct_ip_networks": 6.0},
        {"many_ips", "many_ip_networks"},
    ),
    "spend": (
        {"n_purchases": 1.0, "purchase_amount_sum": 40_000.0, "purchase_amount_mean": 40_000.0},
        {"high_spend", "high_order_value"},
    ),
}


@pytest.fixture(scope="module")
def population() -> pl.DataFrame:
    return population_frame(n=1500, seed=3)


@pytest.fixture(scope="module")
def bundle(population: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> ScoringBundle:
    """A Gaussian champion bundle written to disk and read back, as scoring reads it."""
    detector = make_detector("gaussian", threshold_percentile=97.0)
    detector.fit(feature_matrix(population, FEATURE_COLUMNS), feature_names=list(FEATURE_COLUMNS))
    model_dir = detector.save(tmp_path_factory.mktemp("bundle") / "gaussian")
    finalize_bundle(detector, model_dir, population, categories={})
    return ScoringBundle.load(model_dir)


@pytest.fixture(scope="module")
def day(population: pl.DataFrame) -> pl.DataFrame:
    """A scoring day: fresh normal user-days plus one typical user per abnormal shape."""
    normal = population_frame(n=400, seed=4)
    odd = [
        typical_row(population, **overrides).with_columns(user_key=pl.lit(name))
        for name, (overrides, _) in ABNORMAL.items()
    ]
    return pl.concat(
        [
            normal,
            *(
                row.with_columns(event_day=normal["event_day"][0]).select(normal.columns)
                for row in odd
            ),
        ]
    )


@pytest.fixture(scope="module")
def scored(bundle: ScoringBundle, day: pl.DataFrame) -> pl.DataFrame:
    return score_user_days(
        bundle, day, load_policy(DEFAULT_POLICY, FEATURE_COLUMNS), MODEL, scored_at=SCORED_AT
    )


def test_rows_follow_the_score_schema_and_carry_the_model(
    scored: pl.DataFrame, day: pl.DataFrame
) -> None:
    assert scored.schema == pl.Schema(SCORE_SCHEMA)
    assert scored["user_key"].to_list() == day["user_key"].to_list()
    assert set(scored["model_name"]) == {"anomaly_detector"}
    assert set(scored["model_version"]) == {"7"}
    assert set(scored["model_kind"]) == {"gaussian"}
    assert set(scored["scored_at"]) == {SCORED_AT}


def test_points_are_monotone_in_the_raw_score(scored: pl.DataFrame, bundle: ScoringBundle) -> None:
    by_raw = scored.sort("raw_score")
    assert by_raw["score"].diff().drop_nulls().min() >= 0
    assert scored["score"].min() >= 0 and scored["score"].max() <= 1000
    # past the training maximum the scale keeps ordering (strictly) above 900 points
    beyond = by_raw.filter(pl.col("raw_score") > bundle.scaler.quantiles_[-1])
    assert beyond.height >= 1
    assert beyond["score"].min() > 900 and beyond["score"].is_sorted()
    assert beyond["score"].n_unique() == beyond.height


def test_flag_threshold_and_outcome_agree(scored: pl.DataFrame, bundle: ScoringBundle) -> None:
    assert set(scored["threshold"]) == {bundle.threshold_points}
    assert scored["flagged"].to_list() == (scored["score"] >= scored["threshold"]).to_list()
    assert 0 < scored["flagged"].sum() < scored.height
    by_band = scored.filter(pl.col("matched_rule").is_null())
    # where no hard rule decided: unflagged → allow, flagged → review below 900, block from 900
    expected = (
        pl.when(~pl.col("flagged"))
        .then(pl.lit("allow"))
        .when(pl.col("score") >= 900)
        .then(pl.lit("block"))
        .otherwise(pl.lit("review"))
    )
    assert by_band["outcome"].to_list() == by_band.select(expected).to_series().to_list()


def test_each_abnormal_row_is_flagged_and_named_by_its_feature(scored: pl.DataFrame) -> None:
    for name, (_, codes) in ABNORMAL.items():
        row = scored.filter(pl.col("user_key") == name).row(0, named=True)
        assert row["flagged"] and row["outcome"] != "allow", (name, row["score"])
        assert row["reason_codes"][0] in codes, (name, row["reason_codes"])
        assert len(row["reasons"]) == len(row["reason_codes"]) <= 3
    view_rate = scored.filter(pl.col("user_key") == "view_rate").row(0, named=True)
    assert "60.0 views/min" in view_rate["reasons"][0]


def test_hard_rules_override_the_band(
    bundle: ScoringBundle, day: pl.DataFrame, tmp_path: Path
) -> None:
    """A rule over an everyday feature blocks rows that the bands alone would allow."""
    document = yaml.safe_load(DEFAULT_POLICY.read_text())
    document["hard_rules"] = [
        {
            "name": "many_searches",
            "outcome": "block",
            "when": [{"feature": "n_searches", "op": ">=", "value": 4}],
        }
    ]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(document))
    policy: Policy = load_policy(tmp_path / "policy.yaml", FEATURE_COLUMNS)
    scored = score_user_days(bundle, day, policy, MODEL, scored_at=SCORED_AT).join(
        day.select("user_key", "n_searches"), on="user_key"
    )

    ruled = scored.filter(pl.col("n_searches") >= 4)
    rest = scored.filter(pl.col("n_searches") < 4)
    assert ruled.filter(~pl.col("flagged")).height > 0, "the rule must reach unflagged rows"
    assert set(ruled["outcome"]) == {"block"}
    # the rule is named where it changed the band's outcome, i.e. below the block band
    overridden = ruled.filter(pl.col("score") < 900)
    assert set(overridden["matched_rule"]) == {"many_searches"}
    assert rest["matched_rule"].null_count() == rest.height
    assert rest.filter(~pl.col("flagged"))["outcome"].unique().to_list() == ["allow"]


def test_an_empty_day_gives_an_empty_table(bundle: ScoringBundle, day: pl.DataFrame) -> None:
    empty = score_user_days(bundle, day.head(0), load_policy(DEFAULT_POLICY), MODEL)
    assert empty.is_empty() and empty.schema == pl.Schema(SCORE_SCHEMA)


def test_scores_do_not_depend_on_the_rest_of_the_day(
    bundle: ScoringBundle, day: pl.DataFrame, scored: pl.DataFrame
) -> None:
    """A user-day's score, flag and reasons are its own: scoring it alone changes nothing."""
    alone = score_user_days(
        bundle,
        day.filter(pl.col("user_key") == "networks"),
        load_policy(DEFAULT_POLICY),
        MODEL,
        scored_at=SCORED_AT,
    )
    together = scored.filter(pl.col("user_key") == "networks")
    # a matrix product over one row and over many may round the last bit differently (BLAS
    # picks kernels by shape), so the floats agree to 1e-12, everything else exactly
    floats = ["raw_score", "score"]
    assert alone.drop("scored_at", *floats).rows() == together.drop("scored_at", *floats).rows()
    for column in floats:
        assert alone[column].to_list() == pytest.approx(together[column].to_list(), rel=1e-12)


@pytest.mark.parametrize("batch_rows", [1, 50, 401, 10_000])
def test_scoring_in_batches_gives_the_rows_of_one_call(
    bundle: ScoringBundle, day: pl.DataFrame, scored: pl.DataFrame, batch_rows: int
) -> None:
    """Bounded memory changes no row: batches of any size, concatenated, are the whole day's
    score table — flags, outcomes, reasons and every other column exactly; the raw score and
    points to 1e-12, as a row alone does (BLAS rounds the last bit by the matrix's shape, which
    the whole day's row count decides just as much). One batch is the one call, bit for bit."""
    tally = DayTally(top_n=5)
    batches = []
    for batch in score_batches(
        bundle,
        day,
        load_policy(DEFAULT_POLICY, FEATURE_COLUMNS),
        MODEL,
        scored_at=SCORED_AT,
        batch_rows=batch_rows,
    ):
        tally.add(batch)
        batches.append(batch)
    assert len(batches) == -(-day.height // batch_rows)
    batched = pl.concat(batches)
    floats = ["raw_score", "score"]
    exact = batch_rows >= day.height
    assert_frame_equal(batched.drop(*floats), scored.drop(*floats), check_exact=True)
    assert_frame_equal(
        batched.select(floats), scored.select(floats), check_exact=exact, rel_tol=1e-12
    )
    (event_day,) = scored["event_day"].unique().to_list()
    assert_frame_equal(
        tally.rows(event_day),
        batched.select(DayTally.ROW_COLUMNS),
        check_exact=True,
    )
    top = batched.sort("score", descending=True).head(5)
    assert tally.top(event_day)["user_key"].to_list() == top["user_key"].to_list()


def test_the_tally_holds_a_days_top_rows_without_the_batch_they_came_from() -> None:
    """The tally keeps a few top rows a day for a whole range; they must not keep their batch's
    buffers alive (a slice of a string column holds all of its strings: a 30-day range's scoring
    grew by ≈ 90 MiB a day that way)."""
    day = datetime(2026, 11, 2).date()
    rows = 20_000
    batch = pl.DataFrame(
        {
            "user_key": [f"user-{i:06d}" for i in range(rows)],
            "event_day": [day] * rows,
            "score": [float(i % 997) for i in range(rows)],
            "raw_score": [float(i) for i in range(rows)],
            "flagged": [i % 997 > 990 for i in range(rows)],
            "outcome": ["allow"] * rows,
            "reasons": [[f"reason {i} " + "x" * 400, "y" * 400] for i in range(rows)],
        }
    )
    tally = DayTally(top_n=10)
    tally.add(batch)
    top = tally.top(day)
    assert top["score"].to_list() == [996.0] * 10
    assert top["user_key"].to_list() == sorted(top["user_key"].to_list())
    batch_bytes = batch.to_arrow(compat_level=pl.CompatLevel.newest()).get_total_buffer_size()
    top_bytes = top.to_arrow(compat_level=pl.CompatLevel.newest()).get_total_buffer_size()
    assert batch_bytes > 16_000_000 and top_bytes < 100_000
