"""Training-loop and hardware configuration, kept apart from the model math.

A ``TrainerSettings`` says *where and how long* to train (accelerator, devices, precision, epochs,
batch size, …); the LightningModules say *what* to learn. The same model code therefore runs on a
laptop CPU, one GPU, or ``torchrun`` across nodes by changing only these fields. This module is
plain Python (no torch import) so that the Dagster layer can build and validate settings when the
code location loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

ACCELERATORS: Final[tuple[str, ...]] = ("auto", "cpu", "gpu")
STRATEGIES: Final[tuple[str, ...]] = ("auto", "ddp")
PRECISIONS: Final[tuple[str, ...]] = ("32-true", "64-true", "16-mixed", "bf16-mixed", "bf16-true")


@dataclass(frozen=True)
class TrainerSettings:
    """Where and how a LightningModule is trained.

    ``devices`` is a count or ``"auto"``; ``strategy="ddp"`` is only for processes started by
    ``torchrun`` (never inside a Dagster process: see STACK.md). ``batch_size`` is per device, so
    the global batch of a DDP run is ``batch_size × devices × num_nodes``. ``patience`` counts
    epochs without a better validation loss before early stopping. ``val_fraction`` is the share of
    training rows held out for validation when the caller supplies no validation set.
    ``checkpoint_dir`` receives the best checkpoint (a temporary directory when None); it must be
    on storage every rank can read. ``cpu_threads`` is torch's intra-op thread count per rank
    while the detector trains or scores (restored afterwards; None keeps torch's default): the
    networks are small, and on shared cores one thread per rank trained the autoencoder ≈ 6× faster
    than two contending threads (measured on the 2-core dev machine), so 1 is the default.
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 0
    num_workers: int = 0
    val_fraction: float = 0.1
    checkpoint_dir: str | None = None
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        _check_choice("accelerator", self.accelerator, ACCELERATORS)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)
        if self.devices != "auto" and not (_is_int(self.devices) and self.devices >= 1):
            raise ValueError(f"trainer setting 'devices' must be 'auto' or an integer >= 1, "
                             f"got {self.devices!r}")
        for name in ("num_nodes", "max_epochs", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("patience", "seed", "num_workers"):
            _check_int(name, getattr(self, name), minimum=0)
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1e3):
            raise ValueError(f"trainer setting 'learning_rate' must be a positive number, "
                             f"got {self.learning_rate!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise ValueError(f"trainer setting 'val_fraction' must be in (0, 1), "
                             f"got {self.val_fraction!r}")
        if self.cpu_threads is not None:
            _check_int("cpu_threads", self.cpu_threads, minimum=1)
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, str):
            raise ValueError(f"trainer setting 'checkpoint_dir' must be a path string or null, "
                             f"got {self.checkpoint_dir!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainerSettings:
        """Build from a JSON-like mapping; unknown keys are an error (a typo must not pass)."""
        values = dict(values or {})
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown trainer setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe field values (``from_dict`` inverts it)."""
        return dataclasses.asdict(self)

    def for_world(self, world_size: int, local_world_size: int) -> TrainerSettings:
        """These settings adjusted to a process group that ``torchrun`` already started.

        Under ``torchrun`` the launch, not the spec, decides how many ranks exist; Lightning must
        be told the same numbers or it refuses to start. With more than one rank the strategy
        becomes DDP (Lightning then joins torchrun's group instead of spawning processes).
        """
        if world_size < 1 or local_world_size < 1 or world_size % local_world_size:
            raise ValueError(f"inconsistent process group: WORLD_SIZE={world_size}, "
                             f"LOCAL_WORLD_SIZE={local_world_size}")
        return dataclasses.replace(
            self, devices=local_world_size, num_nodes=world_size // local_world_size,
            strategy="ddp" if world_size > 1 else self.strategy)

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pytorch_lightning.Trainer`` (the caller adds callbacks)."""
        return {"accelerator": self.accelerator, "devices": self.devices,
                "num_nodes": self.num_nodes, "strategy": self.strategy,
                "precision": self.precision, "max_epochs": self.max_epochs}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not (_is_int(value) and value >= minimum):
        raise ValueError(f"trainer setting {name!r} must be an integer >= {minimum}, "
                         f"got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"trainer setting {name!r} must be one of {choices}, got {value!r}")
