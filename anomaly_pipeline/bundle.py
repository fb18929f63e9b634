"""A scoring bundle: a fitted detector plus what turns its raw scores into operator decisions.

Why bundle them: the 0–1000 scale and the reason codes are fitted on the same training window as
the detector, and must travel with it — into MLflow's registry and back into the scoring asset —
or a promoted model would be read against another model's scale. The bundle is the detector's
saved directory with two extra JSON files, so ``Detector.load`` still reads it unchanged.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anomaly_pipeline.detectors.base import META_FILE, Detector
from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.detectors.registry import SEQUENCE_KINDS, load_detector
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.reasons import ReasonCoder
from anomaly_pipeline.scaling import ScoreScaler

SCALER_FILE = "score_scaler.json"
REASONS_FILE = "reason_coder.json"
#: A sample of training features with their raw scores, and the categorical values seen in
#: training: the reference window that drift monitoring compares each new day against.
REFERENCE_FILE = "reference.parquet"
CATEGORIES_FILE = "reference_categories.json"
REFERENCE_SAMPLE = 20_000


def detector_input(detector: Detector, frame: pl.DataFrame) -> Any:
    """What ``detector`` scores: the feature matrix, or the frame itself for sequence models."""
    if detector.kind in SEQUENCE_KINDS:
        return frame
    return feature_matrix(frame, detector.feature_names or FEATURE_COLUMNS)


def finalize_bundle(
    detector: Detector, model_dir: Path, train: pl.DataFrame, categories: dict[str, list[str]]
) -> None:
    """Fit the score scale and the reason coder on the training rows and store the drift
    reference; write all of it into ``model_dir`` beside the saved detector."""
    scores = detector.decision_function(detector_input(detector, train))
    scaler = ScoreScaler().fit(scores, threshold=detector.threshold_)
    coder = ReasonCoder().fit(train.select(FEATURE_COLUMNS))
    (model_dir / SCALER_FILE).write_text(json.dumps(scaler.to_dict()))
    (model_dir / REASONS_FILE).write_text(json.dumps(coder.to_dict()))
    # The day of each row (when the training table has one) lets drift monitoring compare history
    # features only between days that had a full history window (drift.day_feature_drift).
    day = ["event_day"] if "event_day" in train.columns else []
    reference = train.select(*day, *FEATURE_COLUMNS).with_columns(raw_score=pl.Series(scores))
    if reference.height > REFERENCE_SAMPLE:
        reference = reference.sample(REFERENCE_SAMPLE, seed=0)
    reference.write_parquet(model_dir / REFERENCE_FILE)
    (model_dir / CATEGORIES_FILE).write_text(json.dumps(categories))


def write_bundle(
    detector: Detector,
    model_dir: Path,
    train: pl.DataFrame,
    categories: dict[str, list[str]] | None,
) -> Path:
    """Save ``detector`` and (with ``categories``) its scoring bundle into ``model_dir``.

    Written into a staging directory that is then swapped in, so a reader never sees half a
    model. ``categories`` None saves the bare detector (a training run outside the pipeline).
    """
    if model_dir.exists() and any(model_dir.iterdir()) and not (model_dir / META_FILE).exists():
        raise FileExistsError(
            f"{model_dir} is a non-empty directory that holds no saved "
            f"detector; refusing to overwrite it"
        )
    staging = model_dir.with_name(f".{model_dir.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    detector.save(staging)
    if categories is not None:
        finalize_bundle(detector, staging, train, categories)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    staging.rename(model_dir)
    return model_dir


@dataclass
class ScoringBundle:
    """A loaded bundle, ready to score user-days."""

    detector: Detector
    scaler: ScoreScaler
    reasons: ReasonCoder

    @classmethod
    def load(cls, model_dir: str | Path) -> ScoringBundle:
        model_dir = Path(model_dir)
        scaler = json.loads((model_dir / SCALER_FILE).read_text())
        reasons = json.loads((model_dir / REASONS_FILE).read_text())
        return cls(
            detector=load_detector(model_dir),
            scaler=ScoreScaler.from_dict(scaler),
            reasons=ReasonCoder.from_dict(reasons),
        )

    def raw_scores(self, frame: pl.DataFrame) -> np.ndarray:
        return self.detector.decision_function(detector_input(self.detector, frame))

    @staticmethod
    def reference(model_dir: str | Path) -> tuple[pl.DataFrame, dict[str, list[str]]]:
        """The drift reference stored with a bundle: feature sample + raw scores, categories."""
        model_dir = Path(model_dir)
        return (
            pl.read_parquet(model_dir / REFERENCE_FILE),
            json.loads((model_dir / CATEGORIES_FILE).read_text()),
        )

    @property
    def threshold_points(self) -> float:
        """The detector's operating threshold on the 0–1000 scale."""
        if self.scaler.threshold_points_ is None:
            raise ValueError(
                "the bundle's score scaler was fitted without the detector's "
                "threshold; refit it with the threshold"
            )
        return float(self.scaler.threshold_points_)
