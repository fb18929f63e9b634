"""PyOD's ECOD and COPOD behind the Detector interface: each row scores exactly as PyOD scores it
alone, whatever it is scored with (PyOD's own batch scores move with the batch)."""

from __future__ import annotations

import numpy as np
import pytest
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD

from anomaly_pipeline.detectors.registry import make_detector


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    train = rng.lognormal(size=(800, 6))
    train[:, 2] = rng.normal(size=800)  # a symmetric column: both tails count
    train[:, 4] = -train[:, 4]  # a left-skewed one
    test = np.vstack([rng.lognormal(size=(30, 6)), 4.0 * rng.lognormal(size=(10, 6))])
    return {"train": train, "test": test}


@pytest.mark.parametrize(("kind", "pyod_class"), [("ecod", ECOD), ("copod", COPOD)])
def test_tail_detectors_score_each_row_as_pyod_scores_it_alone(
    kind: str, pyod_class: type, rows: dict[str, np.ndarray]
) -> None:
    detector = make_detector(kind).fit(rows["train"])
    assert detector.scaler_ is not None
    reference = pyod_class().fit(detector.scaler_.transform(rows["train"]))
    scaled = detector.scaler_.transform(rows["test"])
    alone = np.array([reference.decision_function(row[None, :])[0] for row in scaled])

    scores = detector.decision_function(rows["test"])
    np.testing.assert_allclose(scores, alone, rtol=1e-12, atol=1e-12)
    # The same rows in other company score the same; PyOD's batch scores do not.
    np.testing.assert_array_equal(detector.decision_function(rows["test"][:7]), scores[:7])
    assert np.abs(reference.decision_function(scaled) - alone).max() > 0.1


@pytest.mark.parametrize("kind", ["ecod", "copod"])
def test_tail_detectors_save_no_scratch_arrays(kind: str, rows: dict[str, np.ndarray]) -> None:
    detector = make_detector(kind).fit(rows["train"])
    assert not {"U_l", "U_r", "U_skew", "O"} & set(vars(detector.model_))
