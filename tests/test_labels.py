"""Label precedence: an analyst's verdict beats a source label, the latest verdict wins, source
files of one day never overwrite each other; the training set reads the result."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.feedback import FEEDBACK_SCHEMA, FEEDBACK_TABLE
from anomaly_pipeline.ingest import LABELS_TABLE, load_labels
from anomaly_pipeline.labels import source_precedence, user_day_labels
from anomaly_pipeline.schema import LABEL_SCHEMA
from anomaly_pipeline.training_set import COVERAGE_TABLE, FEATURES_TABLE, load_user_days
from anomaly_pipeline.training_set import LABELS_TABLE as STG_LABELS_TABLE

DAY = date(2026, 10, 2)
T0 = datetime(2026, 10, 3, 9, tzinfo=UTC)


def _verdicts(rows: list[tuple]) -> pl.DataFrame:
    """Feedback rows from (user_key, label, decided_at, source_file, row_number[, type])."""
    return pl.DataFrame(
        [
            {
                "user_key": user,
                "event_day": DAY,
                "verdict": "confirmed" if label else "false_positive",
                "label": label,
                "anomaly_type": rest[0] if rest else None,
                "decided_at": decided,
                "source_file": file,
                "row_number": row,
            }
            for user, label, decided, file, row, *rest in rows
        ],
        schema={
            k: FEEDBACK_SCHEMA[k]
            for k in (
                "user_key",
                "event_day",
                "verdict",
                "label",
                "anomaly_type",
                "decided_at",
                "source_file",
                "row_number",
            )
        },
    )


def _source(rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_key": [u for u, _ in rows],
            "event_day": [DAY] * len(rows),
            "anomaly_type": [t for _, t in rows],
        },
        schema={"user_key": pl.String, "event_day": pl.Date, "anomaly_type": pl.String},
    )


def test_an_analyst_verdict_beats_a_source_label() -> None:
    source = _source([("u1", "order_brushing"), ("u2", "click_bot"), ("u3", "scraping")])
    verdicts = _verdicts(
        [("u1", 0, None, "f.csv", 1), ("u2", 1, None, "f.csv", 2), ("u4", 1, None, "f.csv", 3)]
    )
    labels = user_day_labels(source, verdicts)
    assert labels.select("user_key", "label", "anomaly_type", "label_source").rows() == [
        ("u1", 0, None, "analyst"),  # a false positive overrules the source's abnormal label
        ("u2", 1, "click_bot", "analyst"),  # confirmed keeps the source's type
        ("u3", 1, "scraping", "source"),
        ("u4", 1, None, "analyst"),  # a verdict labels a user-day no source covers
    ]


def test_the_latest_verdict_wins_by_time_then_file_then_row() -> None:
    verdicts = _verdicts(
        [
            # decided_at decides; a verdict without one is older than any with one
            ("u1", 1, T0, "a.csv", 1, "coupon_abuse"),
            ("u1", 0, None, "z.csv", 9),
            ("u1", 0, datetime(2026, 10, 3, 8, tzinfo=UTC), "z.csv", 5),
            # no times: the later file wins, then the later row
            ("u2", 1, None, "a.csv", 7),
            ("u2", 0, None, "b.csv", 1),
            ("u3", 0, None, "a.csv", 1),
            ("u3", 1, None, "a.csv", 2),
        ]
    )
    labels = user_day_labels(_source([]), verdicts)
    assert labels.select("user_key", "label", "anomaly_type").rows() == [
        ("u1", 1, "coupon_abuse"),
        ("u2", 0, None),
        ("u3", 1, None),
    ]


def test_source_files_of_one_day_keep_one_label_per_user_day() -> None:
    rows = pl.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c"],
            "event_day": [DAY] * 5,
            "anomaly_type": ["reported", "fake_review", "scraping", "click_bot", "reported"],
            "source_file": [
                "labels_x.a.parquet",
                "labels_x.b.parquet",
                "labels_x.b.parquet",
                "labels_x.a.parquet",
                "labels_x.b.parquet",
            ],
        }
    )
    kept = source_precedence(rows)
    assert kept.select("user_id", "anomaly_type").rows() == [
        ("a", "fake_review"),  # a specific type beats reported, whichever file holds it
        ("b", "click_bot"),  # two specific types: the first file by name
        ("c", "reported"),
    ]


def test_two_label_sources_of_a_day_are_both_loaded(tmp_path: Path) -> None:
    db, labels_dir = tmp_path / "warehouse.duckdb", tmp_path / "labels"
    labels_dir.mkdir()
    simulated = {
        "user_id": ["a", "b"],
        "event_day": [DAY, DAY],
        "anomaly_type": ["order_brushing", "scraping"],
    }
    reported = {
        "user_id": ["b", "c"],
        "event_day": [DAY, DAY],
        "anomaly_type": ["reported", "reported"],
    }
    pl.DataFrame(simulated, schema=LABEL_SCHEMA).write_parquet(labels_dir / f"labels_{DAY}.parquet")
    pl.DataFrame(reported, schema=LABEL_SCHEMA).write_parquet(
        labels_dir / f"labels_{DAY}.chargebacks.parquet"
    )
    assert load_labels(db, labels_dir, [DAY], settle_s=0) == {DAY: 3}
    stored = warehouse.read_days(db, LABELS_TABLE, [DAY]).sort("user_id")
    assert stored.select("user_id", "anomaly_type").rows() == [
        ("a", "order_brushing"),
        ("b", "scraping"),
        ("c", "reported"),
    ]


def test_the_training_set_labels_user_days_with_a_verdict(tmp_path: Path) -> None:
    """On a day without a label file only user-days with a verdict are labelled; on a labelled
    day a false positive turns a source's abnormal label into 0."""
    db = tmp_path / "warehouse.duckdb"
    unlabelled_day = date(2026, 10, 1)
    days = [unlabelled_day, DAY]
    features = pl.DataFrame(
        {
            "user_key": ["u1", "u2", "u3", "u1", "u2", "u3"],
            "event_day": [unlabelled_day] * 3 + [DAY] * 3,
            **{name: [0.5] * 6 for name in FEATURE_COLUMNS},
        }
    )
    for day in days:
        warehouse.replace_partitions(
            db, FEATURES_TABLE, features.filter(pl.col("event_day") == day), [day]
        )
    warehouse.replace_partitions(db, STG_LABELS_TABLE, _source([("u1", "click_bot")]), [DAY])
    warehouse.replace_partitions(
        db,
        COVERAGE_TABLE,
        pl.DataFrame({"event_day": days, "labelled": [False, True], "n_labels": [0, 1]}),
        days,
    )
    verdicts = _verdicts([("u1", 0, None, "f.csv", 1), ("u3", 1, None, "f.csv", 2)])
    earlier = _verdicts([("u2", 1, None, "g.csv", 1, "scraping")]).with_columns(
        event_day=pl.lit(unlabelled_day)
    )
    stored = (
        pl.concat([verdicts, earlier])
        .with_columns(
            alert_id=pl.lit(None, pl.String),
            analyst=pl.lit(None, pl.String),
            note=pl.lit(None, pl.String),
            loaded_at=pl.lit(T0),
        )
        .select(list(FEEDBACK_SCHEMA))
    )
    warehouse.replace_partitions(db, FEEDBACK_TABLE, stored, days)
    frame = load_user_days(db, days)
    assert frame.sort("event_day", "user_key").select(
        "event_day", "user_key", "label", "anomaly_type", "label_source"
    ).rows() == [
        (unlabelled_day, "u1", None, None, None),
        (unlabelled_day, "u2", 1, "scraping", "analyst"),
        (unlabelled_day, "u3", None, None, None),
        (DAY, "u1", 0, None, "analyst"),
        (DAY, "u2", 0, None, None),
        (DAY, "u3", 1, None, "analyst"),
    ]
