"""Training-loop and hardware configuration, kept apart from the model math.

A ``TrainerSettings`` says *where and how long* to train (accelerator, devices, precision, epochs,
batch size, …); the LightningModules say *what* to learn. The same model code therefore runs on a
laptop CPU, one GPU, or ``torchrun`` across nodes by changing only these fields. This module is
plain Python and pydantic (no torch import) so that the Dagster layer can build and validate
settings when the code location loads. Its defaults are the only ones: the ``anomaly_model``
asset's Launchpad fields take theirs from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError

from anomaly_pipeline.config_model import (
    ConfigModel,
    Problem,
    key_path,
    problems,
    unknown_keys,
)

Accelerator = Literal["auto", "cpu", "gpu"]
Strategy = Literal["auto", "ddp"]
Precision = Literal["32-true", "64-true", "16-mixed", "bf16-mixed", "bf16-true"]


class TrainerSettings(ConfigModel):
    """Where and how a LightningModule is trained.

    ``strategy="ddp"`` is only for processes started by ``torchrun`` (never inside a Dagster
    process: see STACK.md), so one device is the default; under torchrun ``for_world`` sets
    ``devices`` and ``num_nodes`` from the launch. ``batch_size`` is per device, so the global
    batch of a DDP run is ``batch_size × devices × num_nodes``. ``checkpoint_dir`` must be on
    storage every rank can read. ``cpu_threads``: the networks are small, and on shared cores one
    thread per rank trained the autoencoder ≈ 6× faster than two contending threads (measured on
    the 2-core dev machine), so 1 is the default.
    """

    accelerator: Accelerator = Field("cpu", description=" | ".join(get_args(Accelerator)))
    devices: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1, description="Devices (torchrun processes) per node: a count, or 'auto' for all."
    )
    num_nodes: int = Field(1, ge=1)
    strategy: Strategy = Field(
        "auto", description=" | ".join(get_args(Strategy)) + " (ddp only under torchrun)"
    )
    precision: Precision = Field("32-true", description=" | ".join(get_args(Precision)))
    max_epochs: int = Field(
        200,
        ge=1,
        description="Cap on epochs: early stopping (patience, min_delta) normally ends "
        "training first.",
    )
    batch_size: int = Field(512, ge=1, description="Per device.")
    learning_rate: float = Field(1e-3, gt=0, lt=1e3)
    patience: int = Field(
        3, ge=0, description="Epochs without a better validation loss before early stopping."
    )
    min_delta: float = Field(
        1e-3,
        ge=0,
        description="Smallest fall of the validation loss that counts as better for early stopping "
        "(without one a loss still creeping down never stops it).",
    )
    seed: int = Field(7, ge=0)
    num_workers: int = Field(0, ge=0)
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share of training rows held out "
        "for validation when no validation set is given.",
    )
    checkpoint_dir: str | None = Field(
        None, description="Receives the best checkpoint (a temporary directory when null)."
    )
    cpu_threads: int | None = Field(
        1,
        ge=1,
        description="torch's intra-op threads per rank "
        "while the detector trains or scores (null: torch's default).",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ValueError(_settings_problem(problems(error, TrainerSettings))) from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainerSettings:
        """Build from a JSON-like mapping; unknown keys are an error (a typo must not pass)."""
        return cls(**dict(values or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe field values (``from_dict`` inverts it)."""
        return self.model_dump()

    def for_world(self, world_size: int, local_world_size: int) -> TrainerSettings:
        """These settings adjusted to a process group that ``torchrun`` already started.

        Under ``torchrun`` the launch, not the spec, decides how many ranks exist; Lightning must
        be told the same numbers or it refuses to start. With more than one rank the strategy
        becomes DDP (Lightning then joins torchrun's group instead of spawning processes).
        """
        if world_size < 1 or local_world_size < 1 or world_size % local_world_size:
            raise ValueError(
                f"inconsistent process group: WORLD_SIZE={world_size}, "
                f"LOCAL_WORLD_SIZE={local_world_size}"
            )
        return self.model_copy(
            update={
                "devices": local_world_size,
                "num_nodes": world_size // local_world_size,
                "strategy": "ddp" if world_size > 1 else self.strategy,
            }
        )

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pytorch_lightning.Trainer`` (the caller adds callbacks)."""
        return self.model_dump(
            include={"accelerator", "devices", "num_nodes", "strategy", "precision", "max_epochs"}
        )


def _settings_problem(found: list[Problem]) -> str:
    """The first of ``found`` (locations relative to the settings) in words naming the setting,
    never its value."""
    unknown = unknown_keys(found)
    if unknown is not None:
        return f"unknown trainer setting(s) {unknown.keys}; known: {unknown.allowed}"
    first = found[0]
    return f"trainer setting '{key_path(first.loc)}' {first.text}"
