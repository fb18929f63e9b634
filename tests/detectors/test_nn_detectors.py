"""Lightning detectors: they rank injected anomalies first, round-trip through save/load, the
semi-supervised head learns a labelled abuse shape that reconstruction alone misses, and the
sequence detector catches machine-regular bots that a next-event likelihood calls normal."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from nn_synthetic import TOKEN, funnel_tokens, low_rank_table, sequence_frame
from sklearn.metrics import roc_auc_score

from anomaly_pipeline.detectors.autoencoder import AutoencoderDetector
from anomaly_pipeline.detectors.registry import load_detector, make_detector
from anomaly_pipeline.detectors.sequence import SequenceDetector, sequence_tensors
from anomaly_pipeline.nn.settings import TrainerSettings
from anomaly_pipeline.sequences import build_sequences
from anomaly_pipeline.simulate import SimulationConfig, simulate

FAST = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": 30,
    "batch_size": 128,
    "learning_rate": 0.01,
    "patience": 5,
}


def _auc(normal_scores: np.ndarray, abnormal_scores: np.ndarray) -> float:
    labels = np.r_[np.zeros(len(normal_scores)), np.ones(len(abnormal_scores))]
    return float(roc_auc_score(labels, np.r_[normal_scores, abnormal_scores]))


@pytest.fixture(scope="module")
def tabular() -> dict[str, np.ndarray]:
    """Rows on a rank-3 plane; 'shaped' rows are on the plane but in a labelled corner of it,
    'off_plane' rows break the correlations (what an autoencoder is for)."""
    rng = np.random.default_rng(0)
    normal, _ = low_rank_table(rng, 2000)
    shaped, _ = low_rank_table(rng, 100, shift=3.0)
    test_normal, _ = low_rank_table(rng, 300)
    test_shaped, _ = low_rank_table(rng, 30, shift=3.0)
    off_plane = low_rank_table(rng, 30)[0] + rng.normal(scale=1.5, size=(30, 12))
    return {
        "normal": normal,
        "shaped": shaped,
        "test_normal": test_normal,
        "test_shaped": test_shaped,
        "off_plane": off_plane.astype(np.float32),
    }


@pytest.fixture(scope="module")
def unsupervised(tabular: dict[str, np.ndarray]) -> AutoencoderDetector:
    X = np.r_[tabular["normal"], tabular["shaped"]]
    y = np.r_[np.zeros(2000), np.ones(100)]  # ignored: alpha = 0
    return AutoencoderDetector(hidden_dims=[16], latent_dim=3, trainer=FAST).fit(X, y)


@pytest.fixture(scope="module")
def semi_supervised(tabular: dict[str, np.ndarray]) -> AutoencoderDetector:
    X = np.r_[tabular["normal"], tabular["shaped"]]
    y = np.r_[np.zeros(2000), np.ones(100)]
    return AutoencoderDetector(hidden_dims=[16], latent_dim=3, alpha=1.0, trainer=FAST).fit(X, y)


def test_autoencoder_ranks_off_plane_rows_first(
    unsupervised: AutoencoderDetector, tabular: dict[str, np.ndarray]
) -> None:
    assert not unsupervised.supervised
    normal = unsupervised.decision_function(tabular["test_normal"])
    abnormal = unsupervised.decision_function(tabular["off_plane"])
    assert _auc(normal, abnormal) > 0.98
    assert (
        unsupervised.predict(tabular["off_plane"]).mean()
        > 5 * unsupervised.predict(tabular["test_normal"]).mean()
    )


def test_autoencoder_score_is_mean_of_feature_contributions(
    unsupervised: AutoencoderDetector, tabular: dict[str, np.ndarray]
) -> None:
    contributions = unsupervised.feature_contributions(tabular["off_plane"])
    assert contributions.shape == tabular["off_plane"].shape
    assert (contributions >= 0).all()
    np.testing.assert_allclose(
        contributions.mean(axis=1), unsupervised.decision_function(tabular["off_plane"]), rtol=1e-5
    )


def test_autoencoder_report_and_early_stopping(unsupervised: AutoencoderDetector) -> None:
    report = unsupervised.training_report_
    assert report is not None and 1 <= report.epochs_run <= FAST["max_epochs"]
    assert report.best_val_loss == pytest.approx(min(r.val_loss for r in report.history))
    assert report.history[-1].train_loss < report.history[0].train_loss
    assert report.samples_per_second > 0 and report.world_size == 1


def test_semi_supervised_head_learns_labelled_shape(
    unsupervised: AutoencoderDetector,
    semi_supervised: AutoencoderDetector,
    tabular: dict[str, np.ndarray],
) -> None:
    assert semi_supervised.supervised
    normal, shaped = tabular["test_normal"], tabular["test_shaped"]
    auc_unsupervised = _auc(
        unsupervised.decision_function(normal), unsupervised.decision_function(shaped)
    )
    auc_semi = _auc(
        semi_supervised.decision_function(normal), semi_supervised.decision_function(shaped)
    )
    assert auc_semi > auc_unsupervised + 0.15, (auc_semi, auc_unsupervised)
    # The head must not cost the reconstruction its ability to flag unseen abuse.
    assert (
        _auc(
            semi_supervised.decision_function(normal),
            semi_supervised.decision_function(tabular["off_plane"]),
        )
        > 0.95
    )


def test_unknown_labels_are_skipped_by_the_head(tabular: dict[str, np.ndarray]) -> None:
    X = np.r_[tabular["normal"][:400], tabular["shaped"][:40]]
    y = np.r_[np.full(300, np.nan), np.zeros(100), np.ones(40)]  # most normal rows unlabelled
    detector = AutoencoderDetector(alpha=1.0, trainer={**FAST, "max_epochs": 3}).fit(X, y)
    assert detector.supervised
    assert np.isfinite(detector.decision_function(X)).all()
    assert all(np.isfinite(r.train_loss) for r in detector.training_report_.history)
    with pytest.raises(ValueError, match=r"only 0 \(normal\), 1 \(abnormal\) or NaN"):
        AutoencoderDetector(alpha=1.0).fit(X, np.full(len(X), 2.0))


def test_labels_without_positives_train_unsupervised(tabular: dict[str, np.ndarray]) -> None:
    detector = AutoencoderDetector(alpha=1.0, trainer={**FAST, "max_epochs": 2})
    detector.fit(tabular["normal"][:300], np.zeros(300))
    assert not detector.supervised


@pytest.mark.parametrize("fixture", ["unsupervised", "semi_supervised"])
def test_autoencoder_save_load_gives_identical_scores(
    fixture: str, request: pytest.FixtureRequest, tabular: dict[str, np.ndarray], tmp_path
) -> None:
    detector: AutoencoderDetector = request.getfixturevalue(fixture)
    X = np.r_[tabular["test_normal"], tabular["off_plane"]]
    loaded = load_detector(detector.save(tmp_path / "model"))
    assert isinstance(loaded, AutoencoderDetector)
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    assert loaded.threshold_ == detector.threshold_
    assert loaded.training_report_ == detector.training_report_


def test_autoencoder_rejects_wrong_width(unsupervised: AutoencoderDetector) -> None:
    with pytest.raises(ValueError, match="12 columns"):
        unsupervised.decision_function(np.zeros((3, 5)))


def test_autoencoder_semi_supervised_needs_validation_labels(
    tabular: dict[str, np.ndarray],
) -> None:
    X, y = tabular["normal"][:200], np.r_[np.zeros(190), np.ones(10)]
    with pytest.raises(ValueError, match="y_val is required"):
        AutoencoderDetector(alpha=1.0, trainer=FAST).fit(X, y, X_val=X[:50])


# -- sequences ------------------------------------------------------------------------------
MAX_LEN = 24


@pytest.fixture(scope="module")
def sequences() -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, 20, size=700)
    train = sequence_frame([funnel_tokens(rng, int(n)) for n in lengths], MAX_LEN)
    normal = [funnel_tokens(rng, int(n)) for n in rng.integers(4, 20, size=150)]
    bots = (
        [[TOKEN["view"]] * 20] * 10  # scraping: views only
        + [[TOKEN["cart"], TOKEN["purchase"]] * 8] * 10
    )  # brushing: buy, buy, buy
    return {
        "train": train,
        "normal": sequence_frame(normal, MAX_LEN),
        "bots": sequence_frame(bots, MAX_LEN),
        "bots_left_padded": sequence_frame(bots, MAX_LEN, pad_left=True),
    }


@pytest.fixture(scope="module", params=["gru", "transformer"])
def sequence_detector(
    request: pytest.FixtureRequest, sequences: dict[str, pl.DataFrame]
) -> SequenceDetector:
    # score_batch_size=7: scoring must give the same result however rows are batched.
    detector = make_detector(
        "sequence", encoder=request.param, trainer={**FAST, "max_epochs": 6}, score_batch_size=7
    )
    return detector.fit(sequences["train"])  # type: ignore[return-value]


def test_sequence_detector_ranks_machine_sequences_first(
    sequence_detector: SequenceDetector, sequences: dict[str, pl.DataFrame]
) -> None:
    normal = sequence_detector.decision_function(sequences["normal"])
    bots = sequence_detector.decision_function(sequences["bots"])
    assert _auc(normal, bots) > 0.98
    assert np.isfinite(normal).all() and (normal > 0).all()


def test_sequence_padding_side_does_not_matter(
    sequence_detector: SequenceDetector, sequences: dict[str, pl.DataFrame]
) -> None:
    np.testing.assert_allclose(
        sequence_detector.decision_function(sequences["bots_left_padded"]),
        sequence_detector.decision_function(sequences["bots"]),
        rtol=1e-6,
    )


def test_sequence_save_load_gives_identical_scores(
    sequence_detector: SequenceDetector, sequences: dict[str, pl.DataFrame], tmp_path
) -> None:
    loaded = load_detector(sequence_detector.save(tmp_path / "model"))
    assert isinstance(loaded, SequenceDetector)
    frame = pl.concat([sequences["normal"], sequences["bots"]])
    np.testing.assert_array_equal(
        loaded.decision_function(frame), sequence_detector.decision_function(frame)
    )


def test_sequence_score_is_sum_of_squared_part_z_scores(
    sequence_detector: SequenceDetector, sequences: dict[str, pl.DataFrame]
) -> None:
    frame = pl.concat([sequences["normal"], sequences["bots"]])
    module = sequence_detector.module_
    assert module is not None
    with torch.inference_mode():
        surprisal = module.event_surprisal(*sequence_tensors(frame))
    assert surprisal.nll.shape == (frame.height, MAX_LEN, 3)
    padding = ~surprisal.mask
    assert (surprisal.nll[padding] == 0).all() and (surprisal.variance[padding] == 0).all()
    z = (
        (surprisal.nll - surprisal.entropy).sum(dim=1) / surprisal.variance.sum(dim=1).sqrt()
    ).numpy()
    np.testing.assert_allclose(
        sequence_detector.decision_function(frame), (z**2).sum(axis=1), rtol=1e-4
    )


@pytest.fixture(scope="module")
def simulated_sequences() -> dict[str, pl.DataFrame]:
    """A simulated week: sequences of the first 4 days to train on, the last 3 to score, with
    each user-day's injected anomaly type (null = normal)."""
    sim = simulate(SimulationConfig(n_days=7, n_users=400, seed=11, anomaly_share=0.05))
    events = sim.events.with_columns(
        pl.col("user_id").alias("user_key"), pl.col("event_time").dt.date().alias("event_day")
    )
    labels = sim.labels.select(pl.col("user_id").alias("user_key"), "event_day", "anomaly_type")
    frame = build_sequences(events).join(labels, on=["user_key", "event_day"], how="left")
    days = frame.get_column("event_day").unique().sort()
    return {
        "train": frame.filter(pl.col("event_day") <= days[3]),
        "test": frame.filter(pl.col("event_day") > days[3]),
    }


def test_sequence_detector_ranks_simulated_anomalies_first(
    simulated_sequences: dict[str, pl.DataFrame],
) -> None:
    train, test = simulated_sequences["train"], simulated_sequences["test"]
    detector = SequenceDetector(trainer={"accelerator": "cpu", "devices": 1, "max_epochs": 3})
    scores = detector.fit(train).decision_function(test)
    kind = test.get_column("anomaly_type").fill_null("normal").to_numpy()
    assert roc_auc_score(kind != "normal", scores) > 0.9
    # Click bots alternate view/click at a steady few seconds: each event is ordinary, so their
    # mean NLL is *below* the typical user's; the typicality score still puts them on top.
    with torch.inference_mode():
        surprisal = detector.module_.event_surprisal(*sequence_tensors(test))
    mean_nll = (surprisal.nll.sum(dim=(1, 2)) / surprisal.mask.sum(dim=1)).numpy()
    bots, normal = kind == "click_bot", kind == "normal"
    assert bots.sum() >= 3
    assert np.median(mean_nll[bots]) < np.median(mean_nll[normal])
    assert np.median(scores[bots]) > np.percentile(scores[normal], 90)


def test_sequence_detector_validates_gap_bins() -> None:
    with pytest.raises(ValueError, match="gap_bins must be an integer >= 2"):
        SequenceDetector(gap_bins=1)
    assert SequenceDetector(gap_bins=12)._params()["gap_bins"] == 12


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pl.DataFrame({"tokens": [[1, 2]], "log_gaps": [[0.0, 1.0]]}),
            r"lacks column\(s\) \['category_change'\]",
        ),
        (sequence_frame([[1, 99]], 4), r"'tokens' must hold ids in \[0, 11\]"),
        (sequence_frame([[]], 4), "at least one event per row"),
        (
            pl.DataFrame(
                {
                    "tokens": [[1, 2], [1]],
                    "log_gaps": [[0.0, 1.0], [0.0]],
                    "category_change": [[0, 1], [0]],
                }
            ),
            "padded to one length",
        ),
    ],
)
def test_sequence_input_errors_name_the_column(frame: pl.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sequence_tensors(frame)


# -- settings -------------------------------------------------------------------------------
def test_trainer_settings_validation_and_world() -> None:
    with pytest.raises(ValueError, match=r"unknown trainer setting\(s\) \['epochs'\]"):
        TrainerSettings.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="'precision' must be one of"):
        TrainerSettings(precision="fp8")
    with pytest.raises(ValueError, match="'devices'"):
        TrainerSettings(devices=0)
    settings = TrainerSettings(precision="bf16-mixed").for_world(world_size=4, local_world_size=2)
    assert (settings.devices, settings.num_nodes, settings.strategy) == (2, 2, "ddp")
    assert settings.trainer_kwargs()["precision"] == "bf16-mixed"
    assert TrainerSettings.from_dict(settings.to_dict()) == settings
