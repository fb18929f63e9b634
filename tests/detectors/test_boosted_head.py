"""The labelled ``boosted_head`` detector: labels raise its quality on a simulated split, a type
absent from the labels is still found through its unsupervised base, without labels it is exactly
that base, it round-trips through ``save``/``load``, and the registry and the training config
build and validate it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from sim_features import START, build_features
from sklearn.metrics import average_precision_score

from anomaly_pipeline.defs.training.assets import BaselineConfig
from anomaly_pipeline.detectors.base import Detector
from anomaly_pipeline.detectors.boosted_head import BoostedHeadDetector
from anomaly_pipeline.detectors.preprocess import feature_matrix, label_vector
from anomaly_pipeline.detectors.registry import (
    COLD_START_KIND,
    LABELLED_KINDS,
    kinds_to_fit,
    load_detector,
    make_detector,
)
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.simulate import SimulationConfig

#: The held-out-type test's type: the worst type with labels in ``make bench-quality``, which a
#: classifier that never saw it misses almost entirely.
HELD_OUT_TYPE = "account_takeover"


class Split:
    """Simulated user-days through the real feature path: older days train, the newest is held
    out; ``types`` name each row's anomaly type ("" for a normal row)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        newest = frame["event_day"].max()
        train, test = (
            frame.filter(pl.col("event_day") < newest),
            frame.filter(pl.col("event_day") == newest),
        )
        self.X_train = feature_matrix(train, FEATURE_COLUMNS)
        self.y_train = label_vector(train)
        self.train_types = train["anomaly_type"].fill_null("").to_numpy()
        self.X_test = feature_matrix(test, FEATURE_COLUMNS)
        self.truth = test["label"].fill_null(0).to_numpy()
        self.test_types = test["anomaly_type"].fill_null("").to_numpy()

    def type_pr(self, scores: np.ndarray, kind: str) -> float:
        """PR-AUC of ``kind``'s held-out rows against the normal ones."""
        keep = (self.truth == 0) | (self.test_types == kind)
        return float(average_precision_score(self.test_types[keep] == kind, scores[keep]))


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    config = SimulationConfig(
        start_day=START, n_days=4, n_users=800, anomaly_share=0.08, difficulty=0.5, seed=1
    )
    return Split(build_features(config, tmp_path_factory.mktemp("boosted_head")))


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    """A labelled table: normal rows and a shifted abnormal cluster, every label known."""
    rng = np.random.default_rng(7)
    normal, abnormal = rng.normal(size=(400, 5)), rng.normal(loc=3.0, size=(20, 5))
    test = np.vstack([rng.normal(size=(50, 5)), rng.normal(loc=3.0, size=(5, 5))])
    y = np.r_[np.zeros(400), np.ones(20)]
    return {"X": np.vstack([normal, abnormal]), "y": y, "test": test}


@pytest.mark.slow
def test_labels_beat_no_labels_on_a_simulated_split(split: Split) -> None:
    labelled = make_detector("boosted_head").fit(split.X_train, split.y_train)
    unlabelled = make_detector("boosted_head").fit(split.X_train)
    with_labels = labelled.decision_function(split.X_test)
    without = unlabelled.decision_function(split.X_test)

    assert labelled.supervised and not unlabelled.supervised
    types = sorted(set(split.test_types) - {""})
    worst_with = min(split.type_pr(with_labels, kind) for kind in types)
    worst_without = min(split.type_pr(without, kind) for kind in types)
    pr_with = average_precision_score(split.truth, with_labels)
    pr_without = average_precision_score(split.truth, without)
    assert pr_with > pr_without + 0.2, (pr_with, pr_without)
    assert worst_with > worst_without + 0.2, (worst_with, worst_without)


@pytest.mark.slow
def test_a_type_absent_from_the_labels_is_still_found_through_the_base(split: Split) -> None:
    """The held-out type's training labels are unknown: the classifier alone (weight 0) has not
    learned it, the unsupervised base's rank brings it up."""
    y = split.y_train.copy()
    y[split.train_types == HELD_OUT_TYPE] = np.nan
    head = make_detector("boosted_head").fit(split.X_train, y)
    classifier_only = make_detector("boosted_head", unsupervised_weight=0.0).fit(split.X_train, y)

    found = split.type_pr(head.decision_function(split.X_test), HELD_OUT_TYPE)
    missed = split.type_pr(classifier_only.decision_function(split.X_test), HELD_OUT_TYPE)
    assert head.supervised
    assert found > missed + 0.1, (found, missed)


@pytest.mark.parametrize(
    "labels",
    [None, "all unknown", "all normal", "all abnormal"],
)
def test_without_labels_of_both_classes_it_is_exactly_its_base(
    small: dict[str, np.ndarray], labels: str | None
) -> None:
    y = {
        None: None,
        "all unknown": np.full(len(small["X"]), np.nan),
        "all normal": np.zeros(len(small["X"])),
        "all abnormal": np.ones(len(small["X"])),
    }[labels]
    head = make_detector("boosted_head", base="isolation_forest").fit(small["X"], y)
    base = make_detector("isolation_forest").fit(small["X"])

    assert not head.supervised
    np.testing.assert_array_equal(
        head.decision_function(small["test"]), base.decision_function(small["test"])
    )
    assert head.threshold_ == base.threshold_
    np.testing.assert_array_equal(head.predict(small["test"]), base.predict(small["test"]))


def test_the_default_base_is_the_configured_rank_ensemble(small: dict[str, np.ndarray]) -> None:
    head = make_detector("boosted_head").fit(small["X"])
    base = make_detector(COLD_START_KIND).fit(small["X"])
    np.testing.assert_array_equal(
        head.decision_function(small["test"]), base.decision_function(small["test"])
    )
    contributions = head.feature_contributions(small["test"])
    assert contributions is not None
    np.testing.assert_array_equal(contributions, base.feature_contributions(small["test"]))


@pytest.mark.parametrize("labelled", [True, False])
def test_save_load_round_trip_scores_identically(
    small: dict[str, np.ndarray], labelled: bool, tmp_path: Path
) -> None:
    head = make_detector(
        "boosted_head", threshold_percentile=95.0, base="gaussian", unsupervised_weight=0.1
    ).fit(small["X"], small["y"] if labelled else None)
    loaded = load_detector(head.save(tmp_path / "model"))

    assert isinstance(loaded, BoostedHeadDetector)
    assert loaded.supervised is labelled
    assert (loaded.base, loaded.unsupervised_weight, loaded.threshold_) == (
        "gaussian",
        0.1,
        head.threshold_,
    )
    np.testing.assert_array_equal(
        loaded.decision_function(small["test"]), head.decision_function(small["test"])
    )
    np.testing.assert_array_equal(
        loaded.feature_contributions(small["test"]), head.feature_contributions(small["test"])
    )


def test_labels_rank_the_labelled_cluster_first(small: dict[str, np.ndarray]) -> None:
    head = make_detector("boosted_head", base="gaussian").fit(small["X"], small["y"])
    scores = head.decision_function(small["test"])
    assert set(np.argsort(scores)[-5:]) == set(range(50, 55))


def test_registry_builds_and_validates_it() -> None:
    head = make_detector(
        "boosted_head",
        base="isolation_forest",
        base_params={"n_estimators": 50},
        class_weight="balanced",
    )
    assert isinstance(head, Detector) and head.kind == "boosted_head"
    with pytest.raises(TypeError, match=r"accepted: .*unsupervised_weight"):
        make_detector("boosted_head", weight=0.5)
    with pytest.raises(ValueError, match="base must be a tabular detector kind"):
        make_detector("boosted_head", base="boosted_head")
    with pytest.raises(ValueError, match="base must be a tabular detector kind"):
        make_detector("boosted_head", base="sequence")
    with pytest.raises(ValueError, match="unsupervised_weight"):
        make_detector("boosted_head", unsupervised_weight=-1.0)
    with pytest.raises(ValueError, match="class_weight"):
        make_detector("boosted_head", class_weight="heavy")
    with pytest.raises(ValueError, match="must hold only 0"):
        make_detector("boosted_head").fit(np.zeros((5, 2)), np.array([0, 1, 2, 0, 1]))


def test_training_config_builds_it_and_rejects_unknown_fields() -> None:
    """baseline_models' run config (Dagster's schema from the pydantic ``BaselineConfig``) takes
    it as an opt-in kind (not a default: as champion of the simulated pipeline, every later day's
    score distribution read as drifted, PSI 0.47),
    passes its params to the registry, and rejects a field it does not know."""
    from anomaly_pipeline.definitions import defs

    assert not set(LABELLED_KINDS) & set(BaselineConfig().kinds)
    job = defs.resolve_job_def("training_job")
    params = {"boosted_head": {"base": "isolation_forest", "unsupervised_weight": 0.05}}
    kinds = [*BaselineConfig().kinds, *LABELLED_KINDS]
    run_config = {"ops": {"baseline_models": {"config": {"kinds": kinds, "params": params}}}}
    resolved = dg.validate_run_config(job, run_config)["ops"]["baseline_models"]["config"]
    config = BaselineConfig(**resolved)
    assert COLD_START_KIND in config.kinds and "boosted_head" in config.kinds
    head = make_detector("boosted_head", **config.params["boosted_head"])
    assert (head.base, head.unsupervised_weight) == ("isolation_forest", 0.05)
    with pytest.raises(dg.DagsterInvalidConfigError, match="weight"):
        dg.validate_run_config(
            job, {"ops": {"baseline_models": {"config": {"kinds": [], "weight": 1}}}}
        )


def test_training_skips_labelled_kinds_without_labels_of_both_classes() -> None:
    kinds = ["isolation_forest", COLD_START_KIND, *LABELLED_KINDS]
    both = np.array([0.0, 1.0, np.nan])
    assert kinds_to_fit(kinds, both) == (kinds, [])
    for labels in (np.array([np.nan, np.nan]), np.array([0.0, np.nan]), np.array([1.0, 1.0])):
        assert kinds_to_fit(kinds, labels) == (
            ["isolation_forest", COLD_START_KIND],
            list(LABELLED_KINDS),
        )
