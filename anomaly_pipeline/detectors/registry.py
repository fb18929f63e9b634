"""Detector kinds by name, imported only when used.

Configuration, MLflow params and saved ``meta.json`` files name detectors by ``kind``; this module
turns a kind into a class. Classes are referenced as ``"module:Class"`` strings so that importing
the registry (which the Dagster code location does at load) costs nothing: scikit-learn is imported
when a classical detector is first built (PyOD when one of its detectors is), torch only when an
autoencoder or sequence detector is.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from anomaly_pipeline.detectors.base import META_FILE, Detector, read_kind

DETECTOR_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gaussian": "anomaly_pipeline.detectors.gaussian:GaussianDetector",
        "isolation_forest": "anomaly_pipeline.detectors.isolation_forest:IsolationForestDetector",
        "lof": "anomaly_pipeline.detectors.lof:LOFDetector",
        "autoencoder": "anomaly_pipeline.detectors.autoencoder:AutoencoderDetector",
        "sequence": "anomaly_pipeline.detectors.sequence:SequenceDetector",
        "hbos": "anomaly_pipeline.detectors.pyod_detectors:HBOSDetector",
        "ecod": "anomaly_pipeline.detectors.pyod_detectors:ECODDetector",
        "copod": "anomaly_pipeline.detectors.pyod_detectors:COPODDetector",
        "rank_ensemble": "anomaly_pipeline.detectors.rank_ensemble:RankEnsembleDetector",
        "boosted_head": "anomaly_pipeline.detectors.boosted_head:BoostedHeadDetector",
    }
)

#: Kinds that score the user_day_features matrix.
TABULAR_KINDS: Final[tuple[str, ...]] = (
    "gaussian",
    "isolation_forest",
    "lof",
    "autoencoder",
    "hbos",
    "ecod",
    "copod",
    "rank_ensemble",
    "boosted_head",
)
#: Kinds that learn from labels and are, without labels of both classes, exactly another
#: candidate (their unsupervised base): the training path fits them only when the training split
#: holds an abnormal and a normal label.
LABELLED_KINDS: Final[tuple[str, ...]] = ("boosted_head",)
#: The kind the champion gate promotes when there is no champion and no labelled held-out
#: user-days to rank candidates: the best label-free detector on average over the simulator's
#: difficulty levels and anomaly types (``make bench-cold-start`` measures it among the classical
#: detectors, ``make bench-quality`` against every detector; README, "Cold start" and
#: "Benchmarks"). Its default parameters are the measured configuration.
COLD_START_KIND: Final[str] = "rank_ensemble"
#: Kinds that score behaviour_sequences.
SEQUENCE_KINDS: Final[tuple[str, ...]] = ("sequence",)


def kinds_to_fit(kinds: Sequence[str], labels: np.ndarray) -> tuple[list[str], list[str]]:
    """``kinds`` split into those to fit on a training split with ``labels`` (1 abnormal, 0
    normal, NaN unknown) and the ``LABELLED_KINDS`` skipped because the split holds no abnormal
    and normal label: fitted, each would be a duplicate of its unsupervised base."""
    labelled = bool((labels == 1).any() and (labels == 0).any())
    fitted = [kind for kind in kinds if labelled or kind not in LABELLED_KINDS]
    return fitted, [kind for kind in kinds if kind not in fitted]


def detector_class(kind: str) -> type[Detector]:
    """The class registered for ``kind``; ``ValueError`` listing the known kinds if none is."""
    try:
        target = DETECTOR_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown detector kind {kind!r}; known kinds: {sorted(DETECTOR_KINDS)}"
        ) from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Detector)) or cls.kind != kind:
        raise TypeError(
            f"{target} is registered as detector kind {kind!r} but is not a Detector "
            f"subclass with kind = {kind!r}"
        )
    return cls


def make_detector(kind: str, **params: Any) -> Detector:
    """A new, unfitted detector of ``kind`` built with ``params``.

    Raises ``ValueError`` for an unknown kind and ``TypeError`` naming the accepted parameters when
    ``params`` does not fit the constructor (a typo in a config should not surface as a bare
    "unexpected keyword argument").
    """
    cls = detector_class(kind)
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as error:
        raise TypeError(
            f"invalid parameters {sorted(params)} for detector kind {kind!r} "
            f"({error}); accepted: {list(signature.parameters)}"
        ) from None
    return cls(**params)


def load_detector(path: str | Path) -> Detector:
    """Load a detector directory written by ``Detector.save``, whatever its kind."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise FileNotFoundError(f"no saved detector at {path}: {META_FILE} is missing")
    return detector_class(read_kind(path)).load(path)
