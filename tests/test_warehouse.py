"""``warehouse.partition_writer`` stages batches as Parquet files next to the warehouse and
publishes them at once: rows by column name and in staging order, nothing visible or left behind
when the block fails, caller bugs refused when a batch is staged rather than at publish."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from anomaly_pipeline import warehouse

DAY, OTHER_DAY = date(2026, 10, 3), date(2026, 10, 4)
TABLE = "raw.things"
SCHEMA: dict[str, pl.DataType] = {
    "event_day": pl.Date(),
    "name": pl.String(),
    "amount": pl.Float64(),
    "tags": pl.List(pl.String()),
}


def _rows(names: list[str], day: date = DAY) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_day": [day] * len(names),
            "name": names,
            "amount": [float(i) for i in range(len(names))],
            "tags": [[name, "x"] for name in names],
        },
        schema=SCHEMA,
    )


def _stored(path: Path) -> pl.DataFrame:
    return warehouse.read_days(path, TABLE, [DAY, OTHER_DAY])


def test_staged_batches_replace_the_days_by_column_name_in_staging_order(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse.replace_partitions(path, TABLE, _rows(["old", "stale"]), [DAY])
    warehouse.replace_partitions(path, TABLE, _rows(["kept"], OTHER_DAY), [OTHER_DAY])
    with warehouse.partition_writer(path, {TABLE: SCHEMA}, [DAY]) as writer:
        writer.insert(TABLE, _rows(["a", "b"]))
        # A batch with fewer columns, in another order: the missing column is stored as null.
        writer.insert(TABLE, _rows(["c"]).select("name", "event_day"))
        writer.insert(TABLE, _rows([]))
        assert warehouse.staging_dir(path).is_dir()
        before = warehouse.read_days_in(writer, TABLE, [DAY, OTHER_DAY])
        assert before["name"].to_list() == ["old", "stale", "kept"]  # not yet published
    stored = _stored(path)
    assert stored.filter(pl.col("event_day") == DAY).to_dicts() == [
        {"event_day": DAY, "name": "a", "amount": 0.0, "tags": ["a", "x"]},
        {"event_day": DAY, "name": "b", "amount": 1.0, "tags": ["b", "x"]},
        {"event_day": DAY, "name": "c", "amount": None, "tags": None},
    ]
    assert stored.filter(pl.col("event_day") == OTHER_DAY)["name"].to_list() == ["kept"]
    assert not warehouse.staging_dir(path).exists()


def test_value_counts_count_the_rows_of_the_days_per_value_null_included(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    assert warehouse.value_counts(path, TABLE, [DAY], "name") == {}  # no warehouse yet
    warehouse.replace_partitions(path, TABLE, _rows(["a", "b", "a"]), [DAY])
    warehouse.replace_partitions(path, TABLE, _rows(["a", "z"], OTHER_DAY), [OTHER_DAY])
    warehouse.replace_partitions(
        path, TABLE, pl.concat([_rows(["a"]), _rows(["a"]).with_columns(name=None)]), [DAY]
    )
    assert warehouse.value_counts(path, TABLE, [DAY], "name") == {"a": 1, None: 1}
    assert warehouse.value_counts(path, TABLE, [DAY, OTHER_DAY], "name") == {
        "a": 2,
        None: 1,
        "z": 1,
    }
    assert warehouse.value_counts(path, "raw.missing", [DAY], "name") == {}


def test_unordered_publish_stores_the_staged_rows_and_restores_row_order(tmp_path: Path) -> None:
    """``keep_row_order=False`` (raw_events' parallel insert) stores the same rows, in any order,
    and leaves DuckDB's instance-wide ``preserve_insertion_order`` as it was for the other
    connections this process holds on the file."""
    path = tmp_path / "w.duckdb"
    batches = [_rows([f"{batch}-{i}" for i in range(3_000)]) for batch in range(8)]
    with warehouse.connect(path) as other:
        with warehouse.partition_writer(path, {TABLE: SCHEMA}, [DAY], keep_row_order=False) as w:
            for batch in batches:
                w.insert(TABLE, batch)
        setting = other.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    assert setting == (True,)
    assert _stored(path).sort("name").equals(pl.concat(batches).sort("name"))


def test_staged_matches_finds_rows_of_earlier_batches(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with warehouse.partition_writer(path, {TABLE: SCHEMA}, [DAY]) as writer:
        wanted = pl.DataFrame({"name": ["b", "z"], "event_day": [DAY, DAY]})
        assert writer.staged_matches(TABLE, wanted, ["name", "amount"]).is_empty()
        writer.insert(TABLE, _rows(["a", "b"]))
        writer.insert(TABLE, _rows(["z"]))
        found = writer.staged_matches(TABLE, wanted, ["name", "amount"])
    assert sorted(found.rows()) == [("b", 1.0), ("z", 0.0)]


def test_a_failing_block_publishes_nothing_and_leaves_no_staged_files(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    warehouse.replace_partitions(path, TABLE, _rows(["old"]), [DAY])
    with (
        pytest.raises(RuntimeError, match="late batch"),
        warehouse.partition_writer(path, {TABLE: SCHEMA}, [DAY]) as writer,
    ):
        writer.insert(TABLE, _rows(["new"]))
        raise RuntimeError("late batch failed")
    assert _stored(path)["name"].to_list() == ["old"]
    assert not warehouse.staging_dir(path).exists()


def test_caller_bugs_are_refused_when_the_batch_is_staged(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with warehouse.partition_writer(path, {TABLE: SCHEMA}, [DAY]) as writer:
        with pytest.raises(ValueError, match=r"has no column\(s\) \['colour'\]"):
            writer.insert(TABLE, _rows(["a"]).with_columns(colour=pl.lit("red")))
        with pytest.raises(ValueError, match="fall outside the partitions"):
            writer.insert(TABLE, _rows(["a"], OTHER_DAY))
        with pytest.raises(ValueError, match="was not opened for writing"):
            writer.insert("raw.elsewhere", _rows(["a"]))
    assert _stored(path).is_empty()
