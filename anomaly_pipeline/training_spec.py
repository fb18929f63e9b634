"""The training spec: what the ``anomaly_model`` asset asks a torchrun process group to train.

One pydantic model serves both sides of the launch. The asset builds and validates it before
torchrun starts (a typo fails the asset, not a child process), writes it with
``model_dump_json``, and ``anomaly_pipeline.train`` reads it back with ``model_validate_json``.
Its defaults — the trainer's included, in ``TrainerSettings`` — are defined here only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from anomaly_pipeline.config_model import (
    ConfigModel,
    KeyProblem,
    Problem,
    key_path,
    problems,
    unknown_keys,
)
from anomaly_pipeline.messages import shown_keys
from anomaly_pipeline.nn.settings import TrainerSettings

Kind = Literal["autoencoder", "sequence"]
KINDS: Final[tuple[str, ...]] = get_args(Kind)
#: Spec fields a detector would also accept as a constructor parameter.
_TOP_LEVEL_ONLY: Final = ("trainer", "threshold_percentile")
Name = Annotated[str, Field(min_length=1)]


class SpecError(ValueError):
    """A training spec that breaks a rule; the message names the field."""


class MlflowSpec(ConfigModel):
    """Where rank 0 logs and registers the model.

    ``run_id``: an existing run to resume (the Dagster run's), else a new run is started in
    ``experiment_name``. ``registered_model_name``: None logs the model without registering it.
    ``artifact_location``: root for a newly created experiment (default: ``mlartifacts/`` beside a
    sqlite database).
    """

    tracking_uri: Name
    experiment_name: Name | None = None
    run_id: Name | None = None
    registered_model_name: Name | None = None
    artifact_location: Name | None = None

    @model_validator(mode="after")
    def _run_or_experiment(self) -> MlflowSpec:
        if self.run_id is None and self.experiment_name is None:
            raise KeyProblem(("experiment_name",), "is required when 'mlflow.run_id' is null")
        return self


class TrainingSpec(ConfigModel):
    """What to train, on which data, with which settings, and where the results go.

    ``feature_names`` (tabular kinds; ignored by ``sequence``) selects and orders the feature
    columns; ``label_column`` (optional; 1 abnormal, 0 normal, null unknown) feeds the
    autoencoder's semi-supervised head. ``val_path`` null holds out ``trainer.val_fraction`` of the
    training rows instead. ``threshold_percentile`` (optional) is passed to the detector.
    ``bundle_categories`` (optional): when set, rank 0 also writes the scoring bundle
    (``bundle.finalize_bundle``: score scale, reason codes, drift reference with these categorical
    values) into ``output_dir`` before logging it, so the registered version is directly
    scoreable; the training table must then hold ``feature_contract.FEATURE_COLUMNS``.
    """

    kind: Kind
    train_path: Name
    output_dir: Name
    val_path: Name | None = None
    feature_names: list[Name] = Field(default_factory=list)
    label_column: Name | None = None
    model_params: dict[str, Any] = Field(default_factory=dict)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    mlflow: MlflowSpec | None = None
    threshold_percentile: float | None = Field(None, gt=0, lt=100)
    bundle_categories: dict[str, list[str]] | None = None

    @field_validator("feature_names")
    @classmethod
    def _distinct_features(cls, names: list[str]) -> list[str]:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"repeats column(s) {shown_keys(repeated)}")
        return names

    @field_validator("model_params")
    @classmethod
    def _no_top_level_fields(cls, params: dict[str, Any]) -> dict[str, Any]:
        clash = next((name for name in _TOP_LEVEL_ONLY if name in params), None)
        if clash is not None:
            raise ValueError(f"must not contain {clash!r}; use the top-level {clash!r} field")
        return params

    @model_validator(mode="after")
    def _tabular_kinds_name_features(self) -> TrainingSpec:
        if self.kind == "autoencoder" and not self.feature_names:
            raise KeyProblem(
                ("feature_names",), "must name at least one column for kind 'autoencoder'"
            )
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingSpec:
        """Validate a JSON-like mapping; ``SpecError`` names the offending field."""
        return _checked(lambda: cls.model_validate(values))

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingSpec:
        """Validate the JSON the asset wrote with ``model_dump_json``."""
        return _checked(lambda: cls.model_validate_json(text))

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingSpec:
        """Read and validate a spec file (what ``python -m anomaly_pipeline.train`` gets)."""
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise SpecError(f"spec file {path} does not exist") from None
        return cls.from_json(text)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``from_dict`` inverts it)."""
        return self.model_dump()


def _checked(validate: Callable[[], TrainingSpec]) -> TrainingSpec:
    try:
        return validate()
    except ValidationError as error:
        raise SpecError(spec_problem(problems(error, TrainingSpec))) from None


def spec_problem(found: list[Problem]) -> str:
    """The first of ``found`` in words that name the spec field, never its value."""
    first = found[0]
    if first.loc == ("trainer",) and first.kind == "value_error":
        # TrainerSettings words its own errors (pydantic runs its __init__ for the nested field)
        return f"spec field 'trainer': {first.text}"
    unknown = unknown_keys(found)
    if unknown is not None:
        where = f"'{unknown.section}' " if unknown.section else ""
        return f"unknown spec field(s) {where}{unknown.keys}; known: {unknown.allowed}"
    if first.kind == "json_invalid":
        return f"the spec is not valid JSON ({first.text})"
    if not first.loc:
        return f"a training spec {first.text}"
    verb = "is required" if first.kind == "missing" else first.text
    return f"spec field '{key_path(first.loc)}' {verb}"
