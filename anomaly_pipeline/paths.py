"""Where the pipeline keeps its state.

Everything the embedded default writes lives under one data directory, chosen by the environment
variable ``ANOMALY_PIPELINE_HOME`` (default ``./.anomaly_pipeline``), so a demo or a test never
writes anywhere else and a temporary directory isolates a test completely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anomaly_pipeline.model_registry import Champion

HOME_ENV = "ANOMALY_PIPELINE_HOME"
DEFAULT_HOME = ".anomaly_pipeline"
#: A folder of deploy-time files (mappings, rules) besides the checkout's resources/.
CONFIG_DIR_ENV = "ANOMALY_PIPELINE_CONFIG_DIR"


@dataclass(frozen=True)
class DataHome:
    """The layout of the data directory; every path is derived from ``root``."""

    root: Path

    @property
    def landing(self) -> Path:
        """Incoming day files (one sub-folder per source kind: ``events/``, ``labels/``)."""
        return self.root / "landing"

    @property
    def landing_events(self) -> Path:
        return self.landing / "events"

    @property
    def landing_labels(self) -> Path:
        return self.landing / "labels"

    @property
    def warehouse(self) -> Path:
        """The single DuckDB file holding every table."""
        return self.root / "warehouse.duckdb"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def artifacts(self) -> Path:
        """Training sets, model directories, checkpoints, reports and plots."""
        return self.root / "artifacts"

    def training_set_dir(self, run_id: str) -> Path:
        """The training set built by Dagster run ``run_id``."""
        return self.artifacts / "training_sets" / run_id

    def run_models_dir(self, run_id: str) -> Path:
        """The bundles of the models trained by Dagster run ``run_id``, one folder per kind."""
        return self.artifacts / "models" / run_id

    @property
    def champion_cache(self) -> Path:
        """Local copies of champion bundles, one per registered version (versions are immutable)."""
        return self.artifacts / "champion_cache"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def champion(self) -> Champion | None:
        """The model version that scores production days and a local copy of its bundle, or None
        before the first promotion: the one lookup that evaluation, scoring and drift share."""
        from anomaly_pipeline.model_registry import champion_bundle_dir

        return champion_bundle_dir(self.mlflow_tracking_uri, self.champion_cache)

    def ensure(self) -> DataHome:
        """Create the directories (idempotent) and return self."""
        for path in (
            self.root,
            self.landing_events,
            self.landing_labels,
            self.artifacts,
            self.mlflow_artifacts,
            self.dagster_home,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self


def data_home(root: str | os.PathLike[str] | None = None) -> DataHome:
    """The data directory: ``root`` if given, else ``$ANOMALY_PIPELINE_HOME``, else the default."""
    chosen = root if root is not None else os.environ.get(HOME_ENV, DEFAULT_HOME)
    return DataHome(Path(chosen).expanduser().resolve())


#: The project checkout (the package is installed in editable mode): resources/, dbt_features/.
REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when absolute, else relative to the project checkout (not the cwd)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else REPO_ROOT / candidate


RESOURCES_DIR = REPO_ROOT / "resources"


class ConfigPathError(ValueError):
    """A configuration file named in run config lies outside the allowed folders."""


def config_dirs() -> list[Path]:
    """Folders a mapping or rules file may live in: resources/, ``$ANOMALY_PIPELINE_CONFIG_DIR``."""
    extra = os.environ.get(CONFIG_DIR_ENV)
    return [RESOURCES_DIR.resolve(), *([Path(extra).expanduser().resolve()] if extra else [])]


def config_file(path: str | os.PathLike[str], *, setting: str) -> Path:
    """The file a Launchpad setting (``mapping_file``, ``policy_file``) names, resolved.

    Relative paths are taken from the project checkout. Why the folder rule: run config is typed
    by whoever can launch a run, and a parser's error messages quote what it read, so an arbitrary
    path (``/etc/shadow``) would leak that file into the event log. Symbolic links are followed
    before the check.
    """
    resolved = repo_path(path).resolve()
    allowed = config_dirs()
    if not any(resolved.is_relative_to(folder) for folder in allowed):
        raise ConfigPathError(
            f"{setting} {str(path)[:120]!r} is outside the folders configuration files are read "
            f"from ({', '.join(str(folder) for folder in allowed)}): put it in resources/ or in "
            f"the folder named by {CONFIG_DIR_ENV}"
        )
    return resolved
