"""Writing landing files so that no reader ever sees half of one.

A landing file appears in one step: it is written under a hidden temporary name in the same
directory (``raw_events`` and the landing sensor skip hidden files) and renamed over the target.
Shared by the simulator and onboarding.
"""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import polars as pl


def write_parquet_atomic(frame: pl.DataFrame, target: Path) -> bool:
    """Write ``frame`` to ``target`` atomically; return whether the file changed.

    A byte-identical existing file is left alone (same modification time), so delivering the same
    data again does not look like a re-delivery to the landing sensor.
    """
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        frame.write_parquet(temporary)
        if target.is_file() and filecmp.cmp(temporary, target, shallow=False):
            return False
        os.replace(temporary, target)
        return True
    finally:
        temporary.unlink(missing_ok=True)
