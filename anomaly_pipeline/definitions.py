"""The code location: everything under ``anomaly_pipeline/defs/``, found by Dagster itself.

``dg.load_from_defs_folder`` reads ``[tool.dg.project]`` in pyproject.toml and loads every module
of the defs folder: the assets, checks, jobs, sensors and schedules defined at module scope, and
the resources from ``defs/resources.py``'s ``@dg.definitions`` function. A new stage folder needs
no entry here.
"""

import warnings
from pathlib import Path

import dagster as dg

# Single-run backfill policies and partitioned asset checks are beta/preview features we rely on
# on purpose; filtered before the defs modules define them.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
