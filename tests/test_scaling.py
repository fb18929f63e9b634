"""ScoreScaler: monotone 0–1000 points from the training score distribution."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from anomaly_pipeline.detectors.base import flag_threshold
from anomaly_pipeline.paths import repo_path
from anomaly_pipeline.policy import load_policy
from anomaly_pipeline.scaling import ScoreScaler

#: The shipped policy's bands (hard rules read features this test does not build).
BANDS_ONLY = replace(load_policy(repo_path("resources/policy.yaml")), hard_rules=())


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(0).gamma(2.0, 1.0, 20_000)


def test_points_follow_the_training_cdf(train: np.ndarray) -> None:
    scaler = ScoreScaler().fit(train)
    q50, q90, q99, q999 = np.quantile(train, [0.5, 0.9, 0.99, 0.999])
    points = scaler.transform([train.min() - 1, q50, q90, q99, q999, train.max()])
    # 900 * (1 - sqrt(1 - F)) at F = 0.5, 0.9, 0.99, 0.999 and 1
    assert points == pytest.approx([0.0, 263.6, 615.4, 810.0, 871.5, 900.0], abs=1.0)


def test_beyond_the_training_max_approaches_1000(train: np.ndarray) -> None:
    scaler = ScoreScaler().fit(train)
    width = train.max() - np.quantile(train, 0.99)
    beyond = scaler.transform(train.max() + width * np.array([0.5, 1.0, 3.0, 100.0]))
    assert 900 < beyond[0] < beyond[1] < beyond[2] < beyond[3] <= 1000
    assert beyond[1] == pytest.approx(900 + 100 * (1 - np.exp(-1)), abs=0.01)
    assert beyond[3] == pytest.approx(1000.0)


def test_transform_is_monotone_and_bounded(train: np.ndarray) -> None:
    scaler = ScoreScaler().fit(train)
    grid = np.linspace(-5, train.max() * 3, 5000)
    points = scaler.transform(grid)
    assert np.all(np.diff(points) >= 0)
    assert points.min() >= 0 and points.max() <= 1000


def test_ties_give_the_share_of_scores_at_or_below(train: np.ndarray) -> None:
    scores = np.concatenate([np.zeros(800), np.linspace(1, 2, 200)])
    scaler = ScoreScaler().fit(scores)
    # 80 % of training scores are <= 0, so a score of 0 sits at F = 0.8
    assert scaler.points(0.0) == pytest.approx(900 * (1 - np.sqrt(0.2)), abs=1.0)
    assert scaler.points(-0.1) == 0.0


def test_threshold_maps_into_the_same_scale(train: np.ndarray) -> None:
    threshold = float(np.percentile(train, 99))
    scaler = ScoreScaler().fit(train, threshold=threshold)
    assert scaler.threshold_points_ == pytest.approx(810.0, abs=1.0)
    above = train[train > threshold]
    assert np.all(scaler.transform(above) >= scaler.threshold_points_)


def test_constant_training_scores_still_scale(train: np.ndarray) -> None:
    scaler = ScoreScaler().fit(np.full(50, 3.0))
    assert scaler.transform([2.0, 3.0, 4.0, 10.0]).tolist() == pytest.approx(
        [0.0, 900.0, 900 + 100 * (1 - np.exp(-1 / 3)), 900 + 100 * (1 - np.exp(-7 / 3))]
    )


def test_round_trip_through_json(train: np.ndarray) -> None:
    scaler = ScoreScaler().fit(train, threshold=4.0)
    restored = ScoreScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    probe = np.linspace(-1, 30, 101)
    assert np.array_equal(restored.transform(probe), scaler.transform(probe))
    assert restored.threshold_points_ == scaler.threshold_points_


def test_bad_input_is_rejected_with_a_clear_message(train: np.ndarray) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ScoreScaler().transform([1.0])
    with pytest.raises(ValueError, match="train_scores is empty"):
        ScoreScaler().fit([])
    with pytest.raises(ValueError, match=r"scores holds 1 non-finite value"):
        ScoreScaler().fit(train).transform([1.0, np.nan])
    with pytest.raises(ValueError, match="tail_power"):
        ScoreScaler(tail_power=0)
    state = ScoreScaler().fit(train).to_dict()
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['quantiles'\]"):
        ScoreScaler.from_dict({k: v for k, v in state.items() if k != "quantiles"})
    with pytest.raises(ValueError, match="strictly increasing"):
        ScoreScaler.from_dict({**state, "quantiles": state["quantiles"][::-1]})


# -- ties, the flag and the bands (property test) ------------------------------------------------
#: Scores drawn from few distinct values tie heavily, as a sequence model's do (28,548 user-days
#: of one real day shared one score).
_TIED = st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 7.25, 30.0]), min_size=2, max_size=300)


@settings(max_examples=150, deadline=None)
@given(train=_TIED, new=_TIED, percentile=st.sampled_from([50.0, 90.0, 95.0, 97.0, 99.0]))
# a small training set whose 90th percentile falls just below a score (found by hypothesis)
@example(train=[0.0] * 10 + [0.5, 1.0], new=[0.5], percentile=90.0)
def test_ties_never_make_the_flag_and_the_band_disagree(
    train: list[float], new: list[float], percentile: float
) -> None:
    train_scores, raw = np.array(train), np.array(new + train[:5])
    threshold = flag_threshold(train_scores, percentile)
    scaler = ScoreScaler().fit(train_scores, threshold=threshold)
    points = scaler.transform(raw)
    flagged = points >= scaler.threshold_points_

    # equal raw scores get equal points, and the points flag is the detector's raw flag
    for value in np.unique(raw):
        assert len(set(points[raw == value].tolist())) == 1
    np.testing.assert_array_equal(flagged, raw >= threshold)
    # the threshold never sits on a tie it would flag wholesale
    expected = 1 - percentile / 100
    assert np.mean(train_scores >= threshold) <= expected + 1e-9 or threshold == max(train)
    # the policy's bands agree with the flag: review or block exactly when flagged
    frame = pl.DataFrame({"score": points, "flagged": flagged})
    outcome = BANDS_ONLY.apply(frame, flag_column="flagged")["outcome"].to_numpy()
    np.testing.assert_array_equal(outcome != "allow", flagged)
