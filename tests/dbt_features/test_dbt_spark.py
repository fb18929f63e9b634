"""The dbt feature project on Apache Spark equals it on DuckDB, row for row.

One 2-day input (simulated users plus addresses that take the Python path of ip_network_key:
IPv6, IPv4-mapped, padded and invalid text) is loaded into a DuckDB warehouse as the raw assets
do, and the same raw tables are written to Parquet for Spark. `dbt build` runs on both engines (a
local PySpark session on the machine's Java, through `anomaly-pipeline-dbt`); then the mart's day 2
alone is rebuilt on Spark, so the insert-overwrite path and history read from the built day 1 are
checked too.

Equal means: every relation has the same rows; keys, pseudonyms and other non-float columns
exactly, floats to 1e-9 relative; and the same dbt tests (data and unit) pass on both.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dbt_fixtures import (
    FEATURE_MODELS,
    TEST_PSEUDONYM_KEY,
    build_warehouse,
    dbt_day_vars,
    run_dbt,
    run_dbt_spark,
)
from polars.testing import assert_frame_equal

from anomaly_pipeline.privacy import ip_network_keys
from anomaly_pipeline.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.slow

DAY1 = date(2024, 3, 1)
DAY2 = date(2024, 3, 2)

#: Addresses that are not a canonical dotted quad, so the Python UDF computes their network.
ODD_ADDRESSES = ["2001:db8:85a3::8a2e:370:7334", "::ffff:10.1.2.3", " 10.0.0.1", "not-an-ip"]


def two_day_input() -> tuple[pl.DataFrame, pl.DataFrame]:
    sim = simulate(SimulationConfig(start_day=DAY1, n_days=2, n_users=150, seed=11))
    odd = sim.events.head(len(ODD_ADDRESSES)).with_columns(
        pl.Series("ip", ODD_ADDRESSES), pl.col("event_id") + "-odd-address"
    )
    assert not sim.events.get_column("ip").is_in(ODD_ADDRESSES).any()
    return pl.concat([sim.events, odd]), sim.labels


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both engines built from the same input: the DuckDB file and Spark's folder."""
    if shutil.which("java") is None:
        pytest.fail(
            "Java is not installed: dbt on Spark needs a JVM (Java 17, Debian's "
            "openjdk-17-jre-headless; .ci/run installs it where missing)"
        )
    events, labels = two_day_input()
    duck_dir, spark_root = (tmp_path_factory.mktemp(name) for name in ("duckdb", "spark"))
    warehouse = build_warehouse(duck_dir, events, labels)
    run_dbt(["build", *dbt_day_vars(DAY1, DAY2)], warehouse)
    raw_parquet = spark_root / "raw"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in ("raw_events", "event_labels"):
            (raw_parquet / table).mkdir(parents=True)
            con.execute(
                f"copy raw.{table} to '{raw_parquet / table / 'part-0.parquet'}' (format parquet)"
            )
    spark_dir = spark_root / "spark"
    run_dbt_spark(["build", *dbt_day_vars(DAY1, DAY2)], spark_dir, raw_parquet)
    spark_results = _results(spark_root)  # before the rerun's results replace them
    # day 2 alone: the mart's insert-overwrite path, its history read from the built day 1
    run_dbt_spark(
        ["run", "--select", "user_day_features", *dbt_day_vars(DAY2, DAY2)], spark_dir, raw_parquet
    )
    return {"warehouse": warehouse, "spark_dir": spark_dir, "spark_results": spark_results}


def _results(dbt_root: Path) -> Path:
    kept = dbt_root / "build_results.json"
    shutil.copy(dbt_root / "dbt" / "target" / "run_results.json", kept)
    return kept


def _duckdb_relation(warehouse: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql(f"select * from features.{name}").pl()


def _spark_relation(spark_dir: Path, name: str) -> pl.DataFrame:
    """A table of the Spark session's warehouse, read from its Parquet files (partition folders
    event_day=…)."""
    files = spark_dir / "warehouse" / "features.db" / name / "*" / "*.parquet"
    with duckdb.connect() as con:
        return con.sql(f"select * from read_parquet('{files}', hive_partitioning = true)").pl()


@pytest.mark.parametrize("relation", FEATURE_MODELS)
def test_spark_builds_the_same_rows_as_duckdb(built: dict[str, Path], relation: str) -> None:
    duck = _duckdb_relation(built["warehouse"], relation)
    spark = _spark_relation(built["spark_dir"], relation).select(duck.columns)
    assert duck.height > 0
    # Rows are matched on every column that is not a float (each relation's key among them;
    # NULL keys too: int_user_day_access has rows without a device).
    keys = [name for name, dtype in duck.schema.items() if not dtype.is_float()]
    assert_frame_equal(
        spark.sort(keys, nulls_last=True),
        duck.sort(keys, nulls_last=True),
        rel_tol=1e-9,
        abs_tol=0.0,
    )


def test_network_pseudonyms_of_odd_addresses_are_pythons(built: dict[str, Path]) -> None:
    """The odd addresses took Python's ip_network on both engines (a UDF on Spark, the macro's
    fallback on DuckDB): the keys are privacy.ip_network_keys', NULL for the invalid one."""
    events, _ = two_day_input()
    odd = events.filter(pl.col("event_id").str.ends_with("-odd-address"))
    expected = dict(
        zip(
            odd.get_column("event_id"),
            ip_network_keys(odd.get_column("ip").to_list(), TEST_PSEUDONYM_KEY.encode()),
            strict=True,
        )
    )
    assert sum(value is None for value in expected.values()) == 1
    for stg_events in (
        _duckdb_relation(built["warehouse"], "stg_events"),
        _spark_relation(built["spark_dir"], "stg_events"),
    ):
        rows = stg_events.filter(pl.col("event_id").is_in(list(expected)))
        assert dict(zip(rows["event_id"], rows["ip_network_key"], strict=True)) == expected


def test_the_same_dbt_tests_pass_on_both_engines(built: dict[str, Path]) -> None:
    duck = json.loads(
        (built["warehouse"].parent / "dbt" / "target" / "run_results.json").read_text()
    )
    spark = json.loads(built["spark_results"].read_text())

    def tests(results: dict[str, list[dict[str, str]]]) -> dict[str, str]:
        return {
            r["unique_id"]: r["status"]
            for r in results["results"]
            if r["unique_id"].startswith(("test.", "unit_test."))
        }

    assert tests(spark) == tests(duck)
    assert set(tests(duck).values()) == {"pass"}
    assert any(name.startswith("unit_test.") for name in tests(duck))
