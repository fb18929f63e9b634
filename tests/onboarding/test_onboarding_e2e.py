"""`anomaly-pipeline onboard` end to end: the console script in a fresh process on a fresh data
home, no environment variable beyond the home, no hand step — from a history file to scores for
every day (real DuckDB, dbt, torchrun, MLflow and a persistent Dagster instance)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from conftest import REPO_ROOT, SHARED_DATA
from fraud_log_history import write_fraud_log

from anomaly_pipeline import warehouse
from anomaly_pipeline.paths import data_home
from anomaly_pipeline.source_settings import read_source_settings

CONSOLE_SCRIPT = Path(sys.executable).parent / "anomaly-pipeline"
TAOBAO_SAMPLE = SHARED_DATA / "taobao_userbehavior" / "UserBehavior_sample110k.csv"


def onboard(home: Path, *args: str) -> str:
    """Run the console script as a user would; return what it printed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ANOMALY_PIPELINE_START_DATE", "DAGSTER_HOME")
    }
    env.update(ANOMALY_PIPELINE_HOME=str(home), ANOMALY_PIPELINE_DEMO="1")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "onboard", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def table_days(home: Path, table: str) -> set[date]:
    with warehouse.connect(data_home(home).warehouse, read_only=True) as conn:
        rows = conn.execute(f"SELECT DISTINCT event_day FROM {table}").fetchall()
        return {row[0] for row in rows}


def rules(home: Path) -> set[str]:
    with warehouse.connect(data_home(home).warehouse, read_only=True) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT DISTINCT rule FROM raw.quarantined_events").fetchall()
        }


def snapshot(home: Path) -> dict[str, list[tuple]]:
    """Every row of the tables onboarding writes (sorted), to compare two onboardings."""
    tables = (
        "raw.raw_events",
        "raw.quarantined_events",
        "features.user_day_features",
        "scoring.daily_anomaly_scores",
    )
    with warehouse.connect(data_home(home).warehouse, read_only=True) as conn:
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


def assert_scored_every_day(home: Path, first: date, last: date, printed: str) -> None:
    days = table_days(home, "raw.raw_events")
    assert min(days) == first and max(days) == last
    assert table_days(home, "scoring.daily_anomaly_scores") == days
    assert "out_of_partition" not in rules(home)
    assert read_source_settings(data_home(home)).start_date == first
    assert (data_home(home).dagster_home / "dagster.yaml").exists()
    for line in ("Days:", "Events:", "Champion:", "Flagged share per day:", "Daily operation:"):
        assert line in printed, printed


@pytest.mark.slow
def test_onboard_a_multi_day_canonical_file(tmp_path: Path) -> None:
    from anomaly_pipeline.simulate import SimulationConfig, simulate

    sim = simulate(SimulationConfig(start_day=date(2026, 9, 1), n_days=7, n_users=150, seed=3))
    history = tmp_path / "history.parquet"
    sim.events.with_columns(campaign=sim.events["channel"]).write_parquet(history)
    printed = onboard(tmp_path / "home", str(history), "--format", "canonical")
    assert_scored_every_day(tmp_path / "home", date(2026, 9, 1), date(2026, 9, 7), printed)
    assert "Ignored columns: campaign" in printed
    # 7 days leave a time split 2 training days, all without history: split by user instead,
    # so that no later day looks abnormal as a whole and every day's alerts pass the guard
    assert "Alert guard: alerts withheld on 0 of 7 days" in printed, printed
    with warehouse.connect(data_home(tmp_path / "home").warehouse, read_only=True) as conn:
        shares = dict(
            conn.execute(
                "SELECT event_day, avg(flagged::int) FROM scoring.daily_anomaly_scores GROUP BY 1"
            ).fetchall()
        )
    assert max(shares.values()) <= 3 * 0.03, shares  # the alert guard's limit
    # the same file again: identical day files, so no run and no table changes
    before = snapshot(tmp_path / "home")
    again = onboard(tmp_path / "home", str(history), "--format", "canonical")
    assert "Nothing changed since these days were onboarded: no run started" in again
    assert snapshot(tmp_path / "home") == before


@pytest.mark.slow
def test_onboard_a_fraud_log_with_us_times(tmp_path: Path) -> None:
    history = write_fraud_log(tmp_path / "fraud.csv", rows=900, start=datetime(2026, 6, 1), days=61)
    printed = onboard(
        tmp_path / "home", str(history), "--format", "fraud_log", "--time-format", "%m/%d/%Y %H:%M"
    )
    assert_scored_every_day(tmp_path / "home", date(2026, 6, 1), date(2026, 7, 31), printed)
    assert "Ignored columns: sex, age, class" in printed
    assert "Events: 1,800 in, 1,800 accepted, 0 quarantined" in printed


@pytest.mark.slow
@pytest.mark.skipif(not TAOBAO_SAMPLE.exists(), reason=f"Taobao sample not found: {TAOBAO_SAMPLE}")
def test_onboard_the_taobao_sample(tmp_path: Path) -> None:
    home = tmp_path / "home"
    printed = onboard(home, str(TAOBAO_SAMPLE), "--format", "taobao", "--timezone", "Asia/Shanghai")
    settings = read_source_settings(data_home(home))
    assert (settings.start_date, settings.timezone) == (date(2017, 11, 26), "Asia/Shanghai")
    assert table_days(home, "raw.raw_events") == {date(2017, 11, 26)}
    assert "out_of_partition" not in rules(home)
    # the sample is one day: too short for a time split, so training splits it by user and the
    # day still ends with scores from a label-free champion
    assert table_days(home, "features.user_day_features") == {date(2017, 11, 26)}
    assert table_days(home, "scoring.daily_anomaly_scores") == {date(2017, 11, 26)}
    assert "Scores: 1 of 1 days" in printed, printed
    assert "cold start" in printed, printed
    with warehouse.connect(data_home(home).warehouse, read_only=True) as conn:
        users, flagged = conn.execute(
            "SELECT count(*), avg(flagged::int) FROM scoring.daily_anomaly_scores"
        ).fetchone()
    assert users == 66_454
    assert flagged <= 2 * 0.03, flagged  # within 2x the 97th-percentile threshold's rate
