"""The autoencoder fits its input: a code narrower than the input, noisy training inputs, and
training that ends by early stopping rather than at the epoch cap."""

from __future__ import annotations

import numpy as np
import pytest
from nn_synthetic import low_rank_table
from sklearn.metrics import roc_auc_score

from anomaly_pipeline.detectors.autoencoder import AutoencoderDetector, layer_widths
from anomaly_pipeline.nn.settings import TrainerSettings


@pytest.mark.parametrize("width", [2, 3, 4, 5, 6, 12, 31, 64])
def test_default_bottleneck_is_narrower_than_the_input(width: int) -> None:
    hidden, latent = layer_widths(width, None, None)
    assert 1 <= latent < width
    assert all(h > latent for h in hidden)


def test_three_columns_get_a_one_wide_code() -> None:
    assert layer_widths(3, None, None) == ([2], 1)
    assert layer_widths(40, None, None) == ([20], 10)


def test_a_code_at_or_above_the_input_width_is_refused() -> None:
    with pytest.raises(ValueError, match="latent_dim 8 must be below the input width 3"):
        layer_widths(3, [32], 8)
    with pytest.raises(ValueError, match="at least 2 feature columns"):
        layer_widths(1, None, None)
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="must be below the input width"):
        AutoencoderDetector(latent_dim=3, trainer={"max_epochs": 1}).fit(X)


@pytest.fixture(scope="module")
def three_columns() -> dict[str, np.ndarray]:
    """Rows on a line through 3-D space (rank 1) and outliers off it, each column ordinary."""
    rng = np.random.default_rng(5)
    train, _ = low_rank_table(rng, 2000, n_features=3, rank=1)
    normal, _ = low_rank_table(rng, 300, n_features=3, rank=1)
    line, _ = low_rank_table(rng, 30, n_features=3, rank=1)
    off = line + rng.choice([-1.0, 1.0], size=(30, 3)) * rng.uniform(1.0, 2.0, size=(30, 3))
    return {"train": train, "normal": normal, "outliers": off.astype(np.float32)}


def test_autoencoder_ranks_off_line_rows_first_on_three_columns(
    three_columns: dict[str, np.ndarray],
) -> None:
    detector = AutoencoderDetector(trainer={"learning_rate": 0.01, "batch_size": 128})
    detector.fit(three_columns["train"])
    assert detector.module_config_["latent_dim"] == 1
    normal = detector.decision_function(three_columns["normal"])
    outliers = detector.decision_function(three_columns["outliers"])
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    assert roc_auc_score(labels, np.r_[normal, outliers]) > 0.9

    report = detector.training_report_
    assert report is not None
    assert report.epochs_run < TrainerSettings().max_epochs  # early stopping ended it
