"""Publishing a fitted detector as a scoring bundle: the one path of every model kind.

A classical detector (fitted in the Dagster process) and a Lightning one (fitted by the torchrun
entry point) leave training the same way, so both are published here and read back as scoring
reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from feature_population import population_frame

from anomaly_pipeline.bundle import REFERENCE_FILE, ScoringBundle, write_bundle
from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.detectors.registry import make_detector
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS

CATEGORIES = {"channel": ["Ads", "SEO"]}


@pytest.fixture(scope="module")
def train() -> pl.DataFrame:
    return population_frame(n=600, seed=5)


def _fitted(kind: str, train: pl.DataFrame):
    params = (
        {"hidden_dims": [8], "latent_dim": 2, "trainer": {"accelerator": "cpu", "max_epochs": 2}}
        if kind == "autoencoder"
        else {}
    )
    detector = make_detector(kind, threshold_percentile=97.0, **params)
    detector.fit(feature_matrix(train, FEATURE_COLUMNS), feature_names=list(FEATURE_COLUMNS))
    return detector


@pytest.mark.parametrize("kind", ["gaussian", "autoencoder"])
def test_a_written_bundle_scores_like_the_fitted_detector(
    kind: str, train: pl.DataFrame, tmp_path: Path
) -> None:
    detector = _fitted(kind, train)
    model_dir = write_bundle(detector, tmp_path / kind, train, CATEGORIES)
    assert not list(tmp_path.glob(".*staging"))  # swapped in, nothing half-written left
    bundle = ScoringBundle.load(model_dir)
    assert bundle.detector.kind == kind
    expected = detector.decision_function(feature_matrix(train, FEATURE_COLUMNS))
    np.testing.assert_allclose(bundle.raw_scores(train), expected, rtol=1e-5)
    reference, categories = ScoringBundle.reference(model_dir)
    assert categories == CATEGORIES and reference.height == train.height
    assert 0 < bundle.threshold_points < 1000

    # Publishing again replaces the bundle; a folder that holds no detector is never overwritten.
    assert write_bundle(detector, model_dir, train, CATEGORIES) == model_dir
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no saved detector"):
        write_bundle(detector, stranger, train, CATEGORIES)
    assert (stranger / "keep.txt").read_text() == "mine"


def test_without_categories_only_the_detector_is_saved(train: pl.DataFrame, tmp_path: Path) -> None:
    model_dir = write_bundle(_fitted("gaussian", train), tmp_path / "bare", train, None)
    assert (model_dir / "meta.json").is_file() and not (model_dir / REFERENCE_FILE).exists()
