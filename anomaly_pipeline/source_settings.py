"""Facts about the user's source that the data home remembers between runs.

Why a file in the data home: onboarding a history file learns things every later run needs — the
first day of data (so the daily partitions cover it without an environment variable) and the
source's timezone (so time-of-day features describe the shop's local day, while partitions stay UTC
days). The code location, dbt and the CLI all read them from here; an environment variable may
still override the start date (``ANOMALY_PIPELINE_START_DATE``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from anomaly_pipeline.paths import DataHome

SETTINGS_FILE = "source.json"


@dataclass(frozen=True)
class SourceSettings:
    """What onboarding recorded; defaults describe a home that was never onboarded."""

    #: First UTC day holding data (None = never onboarded: the code's default start date applies).
    start_date: date | None = None
    #: IANA timezone of the source's local time (time-of-day features); partitions stay UTC days.
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError on an unknown name

    def earliest(self, day: date) -> SourceSettings:
        """These settings with ``start_date`` moved back to ``day`` if ``day`` is earlier."""
        if self.start_date is not None and self.start_date <= day:
            return self
        return replace(self, start_date=day)

    def to_json(self) -> str:
        data = asdict(self)
        data["start_date"] = self.start_date.isoformat() if self.start_date else None
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SourceSettings:
        data = json.loads(text)
        start = data.get("start_date")
        return cls(
            start_date=date.fromisoformat(start) if start else None,
            timezone=data.get("timezone") or "UTC",
        )


def settings_path(home: DataHome) -> Path:
    return home.root / SETTINGS_FILE


def read_source_settings(home: DataHome) -> SourceSettings:
    """The recorded settings, or the defaults when the home was never onboarded."""
    path = settings_path(home)
    return SourceSettings.from_json(path.read_text()) if path.exists() else SourceSettings()


def write_source_settings(home: DataHome, settings: SourceSettings) -> Path:
    """Write atomically (temporary file + rename) so a reader never sees half a file."""
    path = settings_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".source-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(settings.to_json())
    os.replace(tmp, path)
    return path
