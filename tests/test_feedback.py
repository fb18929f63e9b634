"""Feedback files on real DuckDB: every row accepted or quarantined with a reason, reloads never
duplicate, a malformed file changes nothing, and the template round-trips."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import MalformedSourceError
from anomaly_pipeline.alerts import alert_id, empty_alerts, new_alerts
from anomaly_pipeline.cli import main
from anomaly_pipeline.feedback import (
    ALERTS_TABLE,
    FEEDBACK_QUARANTINE_TABLE,
    FEEDBACK_TABLE,
    SCORES_TABLE,
    load_feedback,
    template,
)

DAY = date(2026, 10, 2)
OTHER_DAY = date(2026, 10, 1)
HEADER = "alert_id,user_key,event_day,verdict,anomaly_type,analyst,decided_at,note\n"


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, Path]:
    """A warehouse holding two scored days (u1–u4 on DAY, u1 the day before) and DAY's alerts
    (u1 and u2), as ``daily_anomaly_scores`` and ``anomaly_alerts`` leave them."""
    db, labels_dir = tmp_path / "warehouse.duckdb", tmp_path / "labels"
    labels_dir.mkdir()
    scored = pl.DataFrame(
        {
            "user_key": ["u1", "u2", "u3", "u4", "u1"],
            "event_day": [DAY] * 4 + [OTHER_DAY],
            "score": [950.0, 900.0, 100.0, 50.0, 120.0],
            "outcome": ["block", "review", "allow", "allow", "allow"],
            "reasons": [["many orders"], ["new device"], [], [], []],
        }
    )
    for day in (DAY, OTHER_DAY):
        warehouse.replace_partitions(
            db, SCORES_TABLE, scored.filter(pl.col("event_day") == day), [day]
        )
    alerts = new_alerts(scored.filter(pl.col("event_day") == DAY), empty_alerts())
    warehouse.replace_partitions(db, ALERTS_TABLE, alerts, [DAY])
    return db, labels_dir


def _write(labels_dir: Path, body: str, name: str = f"feedback_{DAY}.csv") -> Path:
    path = labels_dir / name
    path.write_text(HEADER + body)
    return path


def _load(home: tuple[Path, Path], days: list[date] | None = None):
    db, labels_dir = home
    return load_feedback(
        db, labels_dir, days or [DAY], settle_s=0, now=datetime(2026, 10, 3, tzinfo=UTC)
    )


def test_verdicts_by_alert_id_or_user_day_are_stored_as_labels(home: tuple[Path, Path]) -> None:
    a1 = alert_id("u1", DAY)
    _write(
        home[1],
        f"{a1},,,confirmed,order_brushing,ana,2026-10-03T09:00:00Z,seen before\n"
        f",u3,{DAY},false_positive,,bo,,\n"
        f"{a1},u1,{DAY},false_positive,,bo,2026-10-03T08:00:00+00:00,\n",
    )
    report = _load(home)
    stored = warehouse.read_days(home[0], FEEDBACK_TABLE, [DAY]).sort("row_number")
    assert (report.input_rows, report.accepted_rows, report.quarantined_rows) == (3, 3, 0)
    assert stored.select("user_key", "verdict", "label", "anomaly_type", "row_number").rows() == [
        ("u1", "confirmed", 1, "order_brushing", 1),
        ("u3", "false_positive", 0, None, 2),
        ("u1", "false_positive", 0, None, 3),
    ]
    assert stored["alert_id"].to_list() == [a1, None, a1]
    assert stored["decided_at"].to_list()[0] == datetime(2026, 10, 3, 9, tzinfo=UTC)
    assert stored["decided_at"].to_list()[2] == datetime(2026, 10, 3, 8, tzinfo=UTC)
    assert set(stored["source_file"]) == {f"feedback_{DAY}.csv"}


@pytest.mark.parametrize(
    ("row", "rule", "in_reason"),
    [
        (",u1,,confirmed,,,,", "missing_key", "no alert_id"),
        ("nope,,,confirmed,,,,", "unknown_alert_id", "alert_id 'nope' is not in"),
        (",u1,02/10/2026,confirmed,,,,", "bad_event_day", "'02/10/2026' is not a date"),
        (f"{alert_id('u1', DAY)},u2,,confirmed,,,,", "alert_mismatch", "is user_key u1"),
        (f",u1,{OTHER_DAY},confirmed,,,,", "out_of_partition", f"is about {OTHER_DAY}"),
        (f",u9,{DAY},confirmed,,,,", "unknown_user_day", f"u9 was not scored on {DAY}"),
        (f",u1,{DAY},,,,,", "missing_verdict", "verdict is empty"),
        (f",u1,{DAY},maybe,,,,", "unknown_verdict", "'maybe' is not one of confirmed"),
        (f",u1,{DAY},confirmed,fraud,,,", "unknown_anomaly_type", "'fraud' is not one of"),
        (f",u1,{DAY},false_positive,scraping,,,", "type_without_confirmed", "only a confirmed"),
        (f",u1,{DAY},confirmed,,,yesterday,", "bad_decided_at", "'yesterday' is not an ISO"),
    ],
)
def test_a_bad_row_is_quarantined_with_its_rule_and_reason(
    home: tuple[Path, Path], row: str, rule: str, in_reason: str
) -> None:
    _write(home[1], f",u2,{DAY},confirmed,,,,\n{row}\n")
    report = _load(home)
    (bad,) = warehouse.read_days(home[0], FEEDBACK_QUARANTINE_TABLE, [DAY]).rows(named=True)
    assert (report.input_rows, report.accepted_rows, report.quarantined_rows) == (2, 1, 1)
    assert bad["rule"] == rule and report.rules == {rule: 1}
    assert bad["reason"].startswith("row 2: ") and in_reason in bad["reason"], bad["reason"]
    assert bad["raw_record"].startswith("{") and bad["source_file"] == f"feedback_{DAY}.csv"
    assert warehouse.read_days(home[0], FEEDBACK_TABLE, [DAY])["user_key"].to_list() == ["u2"]


def test_reloading_a_day_replaces_its_rows(home: tuple[Path, Path]) -> None:
    _write(home[1], f",u2,{DAY},confirmed,,,,\n,u3,{DAY},maybe,,,,\n")
    _write(home[1], f",u4,{DAY},false_positive,,,,\n", name=f"feedback_{DAY}.bo.csv")
    first = _load(home)
    second = _load(home)
    assert (second.input_rows, second.accepted_rows, second.quarantined_rows) == (3, 2, 1)
    assert second.per_day == first.per_day == {DAY: (3, 2, 1)}
    assert warehouse.count_by_day(home[0], FEEDBACK_TABLE, [DAY]) == {DAY: 2}
    assert warehouse.count_by_day(home[0], FEEDBACK_QUARANTINE_TABLE, [DAY]) == {DAY: 1}
    # A day whose files are withdrawn stores no feedback any more.
    for path in home[1].iterdir():
        path.unlink()
    assert _load(home).per_day == {DAY: (0, 0, 0)}
    assert warehouse.count_by_day(home[0], FEEDBACK_TABLE, [DAY]) == {DAY: 0}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("alert_id,user_key,event_day\nx,u1,2026-10-02\n", "has no 'verdict' column"),
        ("user_key,verdict\nu1,confirmed\n", "names no user-day"),
        ("user_key,event_day,verdict,score\nu1,2026-10-02,confirmed,3\n", "unknown column"),
        ("user_key,event_day,verdict\nu1,2026-10-02,confirmed", "the last line is cut"),
    ],
)
def test_a_malformed_file_fails_the_range_and_changes_nothing(
    home: tuple[Path, Path], content: str, problem: str
) -> None:
    _write(home[1], f",u2,{DAY},confirmed,,,,\n")
    _load(home)
    (home[1] / f"feedback_{DAY}.zz.csv").write_text(content)
    with pytest.raises(MalformedSourceError, match=problem):
        _load(home)
    assert warehouse.count_by_day(home[0], FEEDBACK_TABLE, [DAY]) == {DAY: 1}


def test_the_template_lists_a_days_alerts_and_loads_once_filled(
    home: tuple[Path, Path],
) -> None:
    alerts = warehouse.read_days(home[0], ALERTS_TABLE, [DAY])
    draft = template(alerts)
    assert draft["alert_id"].to_list() == [alert_id("u1", DAY), alert_id("u2", DAY)]
    assert draft["verdict"].null_count() == 2
    assert draft["note"].to_list()[0] == "score 950.0 (block): many orders"
    filled = draft.with_columns(verdict=pl.Series(["confirmed", "false_positive"]))
    filled.write_csv(home[1] / f"feedback_{DAY}.csv")
    report = _load(home)
    assert (report.accepted_rows, report.quarantined_rows) == (2, 0)
    stored = warehouse.read_days(home[0], FEEDBACK_TABLE, [DAY]).sort("user_key")
    assert stored.select("user_key", "label").rows() == [("u1", 1), ("u2", 0)]


def test_the_cli_writes_a_days_template_and_never_replaces_a_file(
    home: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANOMALY_PIPELINE_HOME", str(home[0].parent))
    out = tmp_path / "draft.csv"
    main(["feedback-template", DAY.isoformat(), "--out", str(out)])
    assert "2 alert(s) of 2026-10-02 written to" in capsys.readouterr().out
    assert pl.read_csv(out)["alert_id"].to_list() == [alert_id("u1", DAY), alert_id("u2", DAY)]
    with pytest.raises(SystemExit) as exit_info:
        main(["feedback-template", DAY.isoformat(), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["feedback-template", "2026-09-01", "--out", str(tmp_path / "none.csv")])
    assert "2026-09-01 has no scores" in capsys.readouterr().err
