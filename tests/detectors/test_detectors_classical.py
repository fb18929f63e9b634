"""Classical detectors, the shared FeatureScaler and the detector registry.

The data imitate user_day_features: heavy-tailed activity counts, correlated views/purchases,
zero-inflated money, bounded rates, rare 0/1 flags and a constant column; outliers of five shapes
(click bot, order brushing, account takeover, a broken correlation, one absurd amount) are injected
into a held-out day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from anomaly_pipeline.detectors.base import META_FILE, Detector, flag_threshold
from anomaly_pipeline.detectors.gaussian import GaussianDetector
from anomaly_pipeline.detectors.isolation_forest import IsolationForestDetector
from anomaly_pipeline.detectors.lof import LOFDetector, default_neighbours
from anomaly_pipeline.detectors.preprocess import FeatureScaler, feature_matrix
from anomaly_pipeline.detectors.rank_ensemble import RankEnsembleDetector
from anomaly_pipeline.detectors.registry import (
    DETECTOR_KINDS,
    SEQUENCE_KINDS,
    TABULAR_KINDS,
    detector_class,
    load_detector,
    make_detector,
)

FEATURES = [
    "n_events",
    "n_views",
    "n_purchases",
    "cart_or_buy_per_view",
    "purchase_amount_sum",
    "interval_mean_s",
    "night_share",
    "distinct_devices",
    "new_device",
    "n_signups",
]
COL = {name: index for index, name in enumerate(FEATURES)}
N_INLIERS, N_PER_SHAPE, N_SHAPES = 300, 6, 5

#: (kind, params) of every classical configuration; ids name them in test output.
CONFIGS = {
    "gaussian_diag": ("gaussian", {"covariance": "diag"}),
    "gaussian_full": ("gaussian", {"covariance": "full"}),
    "isolation_forest": ("isolation_forest", {"n_estimators": 200, "random_state": 0}),
    "lof": ("lof", {"n_neighbors": 20}),
    "hbos": ("hbos", {}),
    "ecod": ("ecod", {}),
    "copod": ("copod", {}),
    "rank_ensemble": ("rank_ensemble", {"member_params": {"lof": {"n_neighbors": 20}}}),
}

#: The per-feature detectors cannot see the broken correlation (each of its columns is ordinary on
#: its own: ROC-AUC 0.55 HBOS, 0.58 COPOD on that shape); HBOS's ten equal-width bins also blur the
#: click bot (0.76). Everything else must clear 0.9.
MIN_ROC_AUC = {"hbos": 0.8, "copod": 0.85}


def _user_days(rng: np.random.Generator, n: int) -> np.ndarray:
    activity = rng.lognormal(2.5, 0.8, n)
    n_events = rng.poisson(activity) + 1
    n_views = rng.binomial(n_events, 0.7)
    n_purchases = rng.binomial(n_views, 0.05)
    cart_rate = rng.binomial(n_views, 0.12) / np.maximum(n_views, 1)
    amount = n_purchases * rng.lognormal(3.5, 0.6, n)
    return np.column_stack(
        [
            n_events,
            n_views,
            n_purchases,
            cart_rate,
            amount,
            rng.lognormal(4.0, 0.5, n),  # interval_mean_s
            rng.beta(1, 12, n),  # night_share
            1 + rng.binomial(1, 0.05, n),  # distinct_devices
            rng.binomial(1, 0.03, n),  # new_device
            np.zeros(n),  # n_signups: constant in this window
        ]
    ).astype(np.float64)


def _outliers(rng: np.random.Generator) -> np.ndarray:
    rows = _user_days(rng, N_PER_SHAPE * N_SHAPES)
    bot, brushing, takeover, broken, amount = np.split(rows, N_SHAPES)
    bot[:, COL["n_events"]] *= 60
    bot[:, COL["n_views"]] = 0.98 * bot[:, COL["n_events"]]
    bot[:, COL["interval_mean_s"]] = 0.5
    brushing[:, COL["n_purchases"]] = 40
    brushing[:, COL["purchase_amount_sum"]] = 40.0
    brushing[:, COL["cart_or_buy_per_view"]] = 1.0
    takeover[:, COL["night_share"]] = 0.95
    takeover[:, COL["distinct_devices"]] = 4
    takeover[:, COL["new_device"]] = 1
    broken[:, COL["n_events"]] *= 3  # many events, not one of them a view
    broken[:, COL["n_views"]] = 0
    broken[:, COL["cart_or_buy_per_view"]] = 0.0
    amount[:, COL["n_purchases"]] = 1
    amount[:, COL["purchase_amount_sum"]] = 200_000.0
    return np.vstack([bot, brushing, takeover, broken, amount])


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    train = _user_days(rng, 400)
    test = np.vstack([_user_days(rng, N_INLIERS), _outliers(rng)])
    labels = np.r_[np.zeros(N_INLIERS), np.ones(N_PER_SHAPE * N_SHAPES)]
    return {"train": train, "test": test, "labels": labels}


@pytest.fixture(scope="module")
def fitted(data: dict[str, np.ndarray]) -> dict[str, Detector]:
    return {
        name: make_detector(kind, threshold_percentile=95.0, **params).fit(
            data["train"], feature_names=FEATURES
        )
        for name, (kind, params) in CONFIGS.items()
    }


# -- detectors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_detector_ranks_outliers_above_inliers(name: str, fitted, data) -> None:
    scores = fitted[name].decision_function(data["test"])
    assert scores.shape == (len(data["test"]),) and np.isfinite(scores).all()
    assert roc_auc_score(data["labels"], scores) > MIN_ROC_AUC.get(name, 0.9)


@pytest.mark.parametrize("name", CONFIGS)
def test_save_load_round_trip_gives_identical_scores(
    name: str, fitted, data, tmp_path: Path
) -> None:
    detector = fitted[name]
    saved = detector.save(tmp_path / name)
    json.loads((saved / META_FILE).read_text())  # meta (params included) is plain JSON

    for loaded in (load_detector(saved), type(detector).load(saved)):
        assert type(loaded) is type(detector)
        assert loaded.feature_names == FEATURES
        assert loaded.threshold_ == detector.threshold_
        assert loaded._params() == detector._params()
        np.testing.assert_array_equal(
            loaded.decision_function(data["test"]), detector.decision_function(data["test"])
        )
        np.testing.assert_array_equal(loaded.predict(data["test"]), detector.predict(data["test"]))


@pytest.mark.parametrize("name", CONFIGS)
def test_predict_flags_the_percentile_share_of_training_rows(name: str, fitted, data) -> None:
    flags = fitted[name].predict(data["train"])
    assert flags.dtype == np.int8 and set(np.unique(flags)) <= {0, 1}
    assert flags.mean() == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("name", CONFIGS)
def test_missing_and_infinite_values_score_as_the_training_median(name: str, fitted, data) -> None:
    detector = fitted[name]
    rows = data["test"][:5].copy()
    rows[:, COL["night_share"]] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    as_median = rows.copy()
    as_median[:, COL["night_share"]] = np.median(data["train"][:, COL["night_share"]])
    np.testing.assert_allclose(
        detector.decision_function(rows), detector.decision_function(as_median)
    )


def test_isolation_forest_is_deterministic_across_refits_and_n_jobs(data) -> None:
    scores = [
        IsolationForestDetector(n_estimators=50, random_state=3, n_jobs=n_jobs)
        .fit(data["train"])
        .decision_function(data["test"])
        for n_jobs in (1, 1, 2)
    ]
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], scores[2])


@pytest.mark.parametrize("name", ["isolation_forest", "lof"])
def test_tree_and_neighbour_detectors_have_no_contributions(name: str, fitted, data) -> None:
    assert fitted[name].feature_contributions(data["test"]) is None


@pytest.mark.parametrize("name", ["gaussian_diag", "gaussian_full"])
def test_gaussian_contributions_sum_to_the_mahalanobis_part(name: str, fitted, data) -> None:
    detector = fitted[name]
    contributions = detector.feature_contributions(data["test"])
    assert contributions.shape == data["test"].shape
    np.testing.assert_allclose(
        contributions.sum(axis=1),
        detector.decision_function(data["test"]) - detector.log_normaliser_,
        rtol=1e-9,
        atol=1e-9,
    )
    if name == "gaussian_diag":
        assert (contributions >= 0).all()


@pytest.mark.parametrize("name", ["gaussian_diag", "gaussian_full"])
@pytest.mark.parametrize(
    "feature", ["n_events", "night_share", "purchase_amount_sum", "interval_mean_s"]
)
def test_gaussian_top_contribution_names_the_perturbed_feature(
    name: str, feature: str, fitted, data
) -> None:
    column = data["train"][:, COL[feature]]
    inliers = data["test"][:N_INLIERS]
    typical = np.argsort(fitted[name].decision_function(inliers))[:20]
    rows = inliers[typical].copy()
    rows[:, COL[feature]] = column.max() * 50 if feature != "night_share" else 1.0
    top = fitted[name].feature_contributions(rows).argmax(axis=1)
    assert [FEATURES[index] for index in top] == [feature] * len(rows)


def test_gaussian_constant_training_column_does_not_break_the_density(fitted, data) -> None:
    for name in ("gaussian_diag", "gaussian_full"):
        detector = fitted[name]
        rows = data["test"][:3].copy()
        rows[:, COL["n_signups"]] = 1.0  # never seen in training
        scores = detector.decision_function(rows)
        assert np.isfinite(scores).all()
        assert (scores > detector.decision_function(data["test"][:3])).all()


def test_rank_ensemble_scores_a_row_the_same_whatever_it_is_scored_with(fitted, data) -> None:
    """Ranks are taken against each member's training scores, never against the batch."""
    ensemble = fitted["rank_ensemble"]
    alone = np.array([ensemble.decision_function(row[None, :])[0] for row in data["test"][-5:]])
    np.testing.assert_array_equal(alone, ensemble.decision_function(data["test"])[-5:])


def test_rank_ensemble_is_the_mean_of_member_training_ranks(fitted, data) -> None:
    ensemble = fitted["rank_ensemble"]
    assert [d.kind for d in ensemble.detectors_] == ["gaussian", "isolation_forest", "lof"]
    rows = data["test"][:50]
    ranks = []
    for member in ensemble.detectors_:
        train = member.decision_function(data["train"])
        score = member.decision_function(rows)
        # inside the training range: the empirical CDF, mapped onto [0, 0.9]
        inside = score <= train.max()
        rank = np.full(score.shape, np.nan)
        rank[inside] = 0.9 * np.interp(score[inside], np.sort(train), np.linspace(0, 1, train.size))
        ranks.append(rank)
    expected = np.mean(ranks, axis=0)
    known = ~np.isnan(expected)
    assert known.sum() > 40
    np.testing.assert_allclose(ensemble.decision_function(rows)[known], expected[known], atol=2e-3)


def test_rank_ensemble_keeps_extremes_ordered_beyond_the_training_range(fitted, data) -> None:
    ensemble = fitted["rank_ensemble"]
    row = data["test"][:1].copy()
    extremes = np.repeat(row, 3, axis=0)
    extremes[:, COL["purchase_amount_sum"]] = [1e5, 1e7, 1e9]
    extremes[:, COL["n_events"]] = [1e3, 1e4, 1e5]
    scores = ensemble.decision_function(extremes)
    assert np.all(np.diff(scores) > 0) and scores.max() <= 1.0


def test_rank_ensemble_contributions_come_from_members_that_have_them(fitted, data) -> None:
    ensemble, gaussian = fitted["rank_ensemble"], fitted["gaussian_full"]
    np.testing.assert_allclose(
        ensemble.feature_contributions(data["test"]), gaussian.feature_contributions(data["test"])
    )
    forests = make_detector("rank_ensemble", members=["isolation_forest", "lof"]).fit(
        data["train"], feature_names=FEATURES
    )
    assert forests.feature_contributions(data["test"]) is None


@pytest.mark.parametrize(
    "members", [[], ["gaussian", "gaussian"], ["sequence"], ["rank_ensemble"], ["nope"]]
)
def test_rank_ensemble_rejects_bad_members(members: list[str]) -> None:
    with pytest.raises(ValueError, match="members must be distinct tabular detector kinds"):
        RankEnsembleDetector(members=members)


def test_flag_threshold_never_lands_on_a_tie() -> None:
    """Thousands of equal scores at the percentile must not all be flagged (a flood)."""
    scores = np.concatenate([np.linspace(0, 1, 900), np.full(80, 2.0), np.linspace(3, 4, 20)])
    threshold = flag_threshold(scores, 95.0)
    assert threshold == 3.0
    assert np.mean(scores >= threshold) <= 0.05
    continuous = np.random.default_rng(0).normal(size=1000)
    assert flag_threshold(continuous, 97.0) == np.percentile(continuous, 97.0)
    assert flag_threshold(np.full(10, 1.0), 90.0) == 1.0  # nothing lies above a constant


def test_gaussian_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="covariance must be one of"):
        GaussianDetector(covariance="spherical")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shrinkage"):
        GaussianDetector(covariance="diag", shrinkage=0.1)
    with pytest.raises(ValueError, match="shrinkage"):
        GaussianDetector(covariance="full", shrinkage=1.5)
    with pytest.raises(ValueError, match="min_variance"):
        GaussianDetector(min_variance=0.0)


def test_gaussian_fixed_shrinkage_round_trips(data, tmp_path: Path) -> None:
    detector = GaussianDetector(covariance="full", shrinkage=0.3).fit(data["train"])
    loaded = load_detector(detector.save(tmp_path / "g"))
    assert loaded._params()["shrinkage"] == 0.3
    np.testing.assert_array_equal(
        loaded.decision_function(data["test"]), detector.decision_function(data["test"])
    )


@pytest.mark.parametrize("cls", [GaussianDetector, IsolationForestDetector, LOFDetector])
def test_detectors_reject_bad_input_clearly(cls: type[Detector], data) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().decision_function(data["test"])
    with pytest.raises(ValueError, match="expected 3"):
        cls().fit(data["train"], feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="at least 2 training rows"):
        cls().fit(data["train"][:1])
    detector = cls().fit(data["train"], feature_names=FEATURES)
    with pytest.raises(ValueError, match=r"X has 9 columns, expected 10 \['n_events'"):
        detector.decision_function(data["test"][:, :9])
    with pytest.raises(ValueError, match="must be 2-D"):
        detector.decision_function(data["test"][0])


# -- FeatureScaler ------------------------------------------------------------------------------
def test_scaler_fills_nan_and_inf_with_the_training_median() -> None:
    X = np.array([[1.0, 5.0], [np.nan, 6.0], [3.0, np.inf], [5.0, -np.inf], [7.0, 7.0]])
    scaler = FeatureScaler().fit(X)
    np.testing.assert_array_equal(scaler.fill_, [4.0, 6.0])
    Z = scaler.transform(np.array([[np.nan, np.inf], [4.0, 6.0]]))
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[0], Z[1])


def test_scaler_handles_constant_all_missing_and_sparse_columns() -> None:
    rng = np.random.default_rng(1)
    sparse = (rng.random(200) < 0.1).astype(float)  # 90 % zeros: IQR is 0
    X = np.column_stack([np.full(200, 3.0), np.full(200, np.nan), sparse])
    scaler = FeatureScaler().fit(X)
    Z = scaler.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, 0], 0.0)
    np.testing.assert_array_equal(Z[:, 1], 0.0)
    np.testing.assert_array_equal(scaler.scale_[:2], [1.0, 1.0])
    assert scaler.log_[2]
    assert scaler.scale_[2] == pytest.approx(np.log1p(sparse).std())
    assert scaler.transform([[4.0, 1.0, 1.0]])[0, 0] == 1.0  # unseen value: finite, 1 unit off


def test_scaler_logs_heavy_tailed_non_negative_columns_only() -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack(
        [
            rng.lognormal(2.0, 1.5, 500),  # heavy tail → log
            rng.normal(0.0, 1.0, 500),  # symmetric → linear
            -rng.lognormal(2.0, 1.5, 500),  # negative → linear
            rng.uniform(0.0, 1.0, 500),
        ]
    )  # bounded rate → linear
    scaler = FeatureScaler().fit(X)
    assert scaler.log_.tolist() == [True, False, False, False]
    Z = scaler.transform(X)
    np.testing.assert_allclose(np.median(Z, axis=0), 0.0, atol=1e-12)
    assert FeatureScaler().fit(X).transform([[-5.0, 0.0, 0.0, 0.5]])[0, 0] < 0  # signed log1p


def test_scaler_clips_extreme_values() -> None:
    X = np.random.default_rng(3).normal(size=(100, 2))
    scaler = FeatureScaler(clip=4.0).fit(X)
    np.testing.assert_array_equal(scaler.transform([[1e9, -1e9]]), [[4.0, -4.0]])


def test_scaler_round_trips_through_json_exactly() -> None:
    X = np.random.default_rng(4).lognormal(1.0, 1.0, size=(300, 3))
    scaler = FeatureScaler(skew_threshold=0.5, clip=8.0).fit(X)
    restored = FeatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert (restored.skew_threshold, restored.clip) == (0.5, 8.0)
    np.testing.assert_array_equal(restored.transform(X), scaler.transform(X))
    out32 = restored.transform(X.astype(np.float32))
    assert out32.dtype == np.float32 and scaler.transform(X).dtype == np.float64


def test_scaler_rejects_bad_input_and_state() -> None:
    scaler = FeatureScaler()
    with pytest.raises(RuntimeError, match="not fitted"):
        scaler.transform([[1.0]])
    with pytest.raises(ValueError, match="must be 2-D"):
        scaler.fit([1.0, 2.0])
    with pytest.raises(ValueError, match="0 rows"):
        scaler.fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match="clip"):
        FeatureScaler(clip=0.0)
    scaler.fit(np.arange(10.0).reshape(5, 2))
    with pytest.raises(ValueError, match="X has 3 columns; the scaler was fitted on 2"):
        scaler.transform(np.zeros((1, 3)))

    state = scaler.to_dict()
    with pytest.raises(ValueError, match="'format'"):
        FeatureScaler.from_dict({**state, "format": "other"})
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['scale'\]"):
        FeatureScaler.from_dict({k: v for k, v in state.items() if k != "scale"})
    with pytest.raises(ValueError, match="equal-length"):
        FeatureScaler.from_dict({**state, "center": [0.0]})
    with pytest.raises(ValueError, match="'scale' must be > 0"):
        FeatureScaler.from_dict({**state, "scale": [1.0, 0.0]})


def test_feature_matrix_selects_columns_in_order_as_float32() -> None:
    frame = pl.DataFrame(
        {"user_key": ["a", "b"], "x": [1, None], "y": [0.5, 2.5], "flag": [True, False]}
    )
    matrix = feature_matrix(frame, ["y", "x", "flag"])
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    np.testing.assert_array_equal(
        matrix, np.array([[0.5, 1.0, 1.0], [2.5, np.nan, 0.0]], dtype=np.float32)
    )
    with pytest.raises(ValueError, match=r"lacks feature column\(s\) \['z'\]"):
        feature_matrix(frame, ["x", "z"])
    with pytest.raises(ValueError, match=r"numeric or boolean: \['user_key \(String\)'\]"):
        feature_matrix(frame, ["x", "user_key"])
    with pytest.raises(ValueError, match="feature_names is empty"):
        feature_matrix(frame, [])


# -- registry -----------------------------------------------------------------------------------
def test_registry_kinds_are_partitioned_into_tabular_and_sequence() -> None:
    assert set(TABULAR_KINDS) | set(SEQUENCE_KINDS) == set(DETECTOR_KINDS)
    assert not set(TABULAR_KINDS) & set(SEQUENCE_KINDS)
    assert (
        DETECTOR_KINDS["autoencoder"]
        == "anomaly_pipeline.detectors.autoencoder:AutoencoderDetector"
    )
    assert DETECTOR_KINDS["sequence"] == "anomaly_pipeline.detectors.sequence:SequenceDetector"


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("gaussian", GaussianDetector),
        ("isolation_forest", IsolationForestDetector),
        ("lof", LOFDetector),
    ],
)
def test_make_detector_builds_the_registered_class(kind: str, cls: type[Detector]) -> None:
    assert detector_class(kind) is cls
    detector = make_detector(kind, threshold_percentile=97.5)
    assert type(detector) is cls and detector.kind == kind
    assert detector.threshold_percentile == 97.5


def test_registry_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown detector kind 'svm'; known kinds: \['autoenc"):
        make_detector("svm")
    with pytest.raises(
        TypeError,
        match=r"invalid parameters \['n_trees'\] for detector kind "
        r"'isolation_forest'.*accepted: \['threshold_percentile'",
    ):
        make_detector("isolation_forest", n_trees=10)
    with pytest.raises(FileNotFoundError, match=r"meta\.json is missing"):
        load_detector(tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps({"kind": "svm"}))
    with pytest.raises(ValueError, match="unknown detector kind 'svm'"):
        load_detector(tmp_path)


def test_registry_import_is_lazy() -> None:
    """The code location imports the registry at load: it must not pull in sklearn or torch."""
    code = (
        "import sys\n"
        "from anomaly_pipeline.detectors import registry\n"
        "assert not {'sklearn', 'torch'} & set(sys.modules), 'eager import'\n"
        "registry.make_detector('lof')\n"
        "assert 'sklearn' in sys.modules and 'torch' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root, timeout=60)


# -- LOF's neighbourhood ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_rows", "expected"), [(5, 4), (12, 10), (300, 10), (1_000, 25), (3_000, 75), (10**6, 100)]
)
def test_lof_neighbours_are_a_fortieth_of_the_rows_within_bounds(
    n_rows: int, expected: int
) -> None:
    assert default_neighbours(n_rows) == expected


def test_lof_takes_its_neighbours_from_the_fitted_rows(data, tmp_path: Path) -> None:
    detector = LOFDetector(max_samples=None).fit(data["train"])
    assert detector.n_neighbors_ == default_neighbours(len(data["train"])) == 10
    sampled = LOFDetector(max_samples=200).fit(data["train"])
    assert sampled.n_neighbors_ == 10 and sampled.model_.n_samples_fit_ == 200
    assert LOFDetector(n_neighbors=25).fit(data["train"]).n_neighbors_ == 25
    loaded = load_detector(sampled.save(tmp_path / "lof"))
    assert isinstance(loaded, LOFDetector) and loaded.n_neighbors_ == 10
    np.testing.assert_array_equal(
        loaded.decision_function(data["test"]), sampled.decision_function(data["test"])
    )
    refit = LOFDetector(max_samples=200).fit(data["train"])  # the sample is seeded
    np.testing.assert_array_equal(
        refit.decision_function(data["test"]), sampled.decision_function(data["test"])
    )
