"""The data home's source settings: defaults, round trip, earliest start, bad timezone."""

from datetime import date
from zoneinfo import ZoneInfoNotFoundError

import pytest

from anomaly_pipeline.paths import data_home
from anomaly_pipeline.source_settings import (
    SourceSettings,
    read_source_settings,
    settings_path,
    write_source_settings,
)


def test_defaults_when_never_onboarded(tmp_path):
    assert read_source_settings(data_home(tmp_path)) == SourceSettings(None, "UTC")


def test_round_trip_and_earliest(tmp_path):
    home = data_home(tmp_path)
    written = SourceSettings(date(2017, 11, 26), "Asia/Shanghai")
    write_source_settings(home, written)
    assert read_source_settings(home) == written
    assert written.earliest(date(2017, 12, 1)).start_date == date(2017, 11, 26)
    assert written.earliest(date(2017, 11, 1)).start_date == date(2017, 11, 1)
    assert not list(settings_path(home).parent.glob(".source-*"))


def test_unknown_timezone_is_rejected():
    with pytest.raises(ZoneInfoNotFoundError):
        SourceSettings(timezone="Mars/Olympus")
