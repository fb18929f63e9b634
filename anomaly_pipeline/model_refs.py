"""What the training and evaluation assets hand each other: small typed records.

Why a module of its own, with nothing but the standard library: Dagster asset signatures name
these types, and every step process imports the code location — naming them must not import
polars, scikit-learn or MLflow. The domain modules that produce them (``training_set``,
``evaluation.gate``, ``model_registry``) use the same classes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

INFO_FILE = "training_set.json"
#: How a training set splits its window: ``time`` (oldest days train, newest are held out),
#: ``user`` (each user's rows in one split, every day in each) or ``auto`` (time when the window
#: holds the validation and holdout days and a training day, else user).
SplitBy = Literal["auto", "time", "user"]


@dataclass(frozen=True)
class TrainingSetInfo:
    """Where a training set lives and what it holds (also written as JSON beside the Parquet)."""

    directory: str
    days: dict[str, list[str]]
    rows: dict[str, int]
    labelled_rows: dict[str, int]
    abnormal_rows: dict[str, int]
    feature_names: list[str]
    #: Values of the event-level categorical columns seen in the training days (drift reference).
    categories: dict[str, list[str]]
    #: User-days available per split before sampling down to the row cap (= ``rows`` if none).
    available_rows: dict[str, int] = field(default_factory=dict)
    #: "time" (days split oldest → newest) or "user" (a short history, or asked for).
    split_by: str = "time"

    def path(self, split: str) -> Path:
        return Path(self.directory) / f"{split}.parquet"

    @classmethod
    def read(cls, directory: str | Path) -> TrainingSetInfo:
        return cls(**json.loads((Path(directory) / INFO_FILE).read_text()))


@dataclass(frozen=True)
class CandidateModel:
    """A detector this run trained and logged to MLflow, not (yet) a registered version.

    ``artifact_uri`` is where its bundle lives in the run's artifacts; ``model_dir`` the local
    copy the evaluation scores. ``tags`` go onto the version when it is registered.
    """

    kind: str
    mlflow_run_id: str
    artifact_uri: str
    model_dir: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredModel(CandidateModel):
    """A candidate registered as ``version`` of the registered model ``name``."""

    name: str = ""
    version: str = ""

    @classmethod
    def of(cls, candidate: CandidateModel, *, name: str, version: str) -> RegisteredModel:
        return cls(**asdict(candidate), name=name, version=version)


@dataclass(frozen=True)
class GateVerdict:
    """What the gate does with one training run's candidates.

    ``action``: "promote" (``promoted`` becomes the champion), "keep" (the champion stays — a
    normal outcome, not a failure) or "error" (the gate cannot decide; the run must fail with
    ``reason``). ``cold_start_default`` names the label-free default when it was promoted
    because nothing could be measured.
    """

    action: str
    promoted: str | None
    reason: str
    challenger_reason: str
    cold_start_default: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationOutcome:
    """``model_evaluation``'s result: where its report is, the gate's verdict, the registered
    version the verdict promotes (None when the champion stays) and the champion it judged."""

    report_dir: str
    gate: GateVerdict
    promoted: RegisteredModel | None
    champion_version: str | None
