"""anomaly-pipeline-dbt's checks before Spark starts (the Spark build itself:
tests/dbt_features/test_dbt_spark.py)."""

from __future__ import annotations

import pytest

from anomaly_pipeline.dbt_spark import (
    DBT_TARGET_ENV,
    SPARK_DIR_ENV,
    SPARK_METHOD_ENV,
    dbt_target,
    main,
)
from anomaly_pipeline.privacy import DEMO_ENV, PSEUDONYM_KEY_ENV, PseudonymKeyError


def test_the_target_defaults_to_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DBT_TARGET_ENV, raising=False)
    assert dbt_target() == "duckdb"
    monkeypatch.setenv(DBT_TARGET_ENV, "spark")
    assert dbt_target() == "spark"


def test_spark_without_a_session_folder_stops_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DBT_TARGET_ENV, "spark")
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-real-secret-of-enough-length")
    monkeypatch.delenv(SPARK_DIR_ENV, raising=False)
    monkeypatch.delenv(SPARK_METHOD_ENV, raising=False)
    with pytest.raises(SystemExit, match=SPARK_DIR_ENV):
        main(["build"])


def test_a_cluster_method_starts_no_local_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """thrift / http reach a cluster: no session folder is asked for, dbt itself runs."""
    monkeypatch.setenv(DBT_TARGET_ENV, "spark")
    monkeypatch.setenv(SPARK_METHOD_ENV, "thrift")
    monkeypatch.delenv(SPARK_DIR_ENV, raising=False)
    assert main(["--version"]) == 0


def test_spark_without_a_pseudonym_key_stops_before_spark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DBT_TARGET_ENV, "spark")
    monkeypatch.delenv(SPARK_METHOD_ENV, raising=False)
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    monkeypatch.delenv(DEMO_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=PSEUDONYM_KEY_ENV):
        main(["build"])
