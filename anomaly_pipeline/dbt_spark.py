"""dbt on a local Spark session: the functions and settings the dbt_features SQL relies on.

The Spark counterpart of ``anomaly_pipeline.dbt_plugin`` (DuckDB). dbt-spark's ``session`` method
runs Spark inside the dbt process and takes ``SparkSession.builder.getOrCreate()``, so the
pseudonym functions can be registered on that session only by whoever starts the process first:
``anomaly-pipeline-dbt`` (``main``) starts the session, registers them, then runs dbt's own CLI in
the same process. Every model and test then sees:

* ``pseudonymize(string) -> string`` — keyed HMAC pseudonym, equal to
  ``anomaly_pipeline.privacy.pseudonymize``: a temporary SQL function over Spark's built-in
  SHA-256, HMAC(key, m) = SHA256(outer_pad || SHA256(inner_pad || m)) with the key pads
  (``privacy.hmac_sha256_pads``) inlined, exactly as the DuckDB macro does. It runs in the JVM;
  no Python worker is involved;
* ``ip_network_key(string) -> string`` — pseudonym of the address's /24 (IPv4) or /48 (IPv6)
  network, NULL for a missing or invalid address. A canonical dotted quad is handled in SQL;
  anything else (IPv6, IPv4-mapped, padded or invalid text) goes to ``privacy.ip_network_keys``
  through a Python UDF, as in DuckDB;
* the session time zone UTC (partition days and night hours are UTC-defined), also set by the
  profile's ``server_side_parameters`` for the ``thrift`` and ``http`` methods.

The functions are temporary: they live in this session only and never reach the metastore or
dbt's compiled SQL and logs, since their text holds the key pads (as secret as the key). On a
cluster (``thrift`` / ``http``), whoever runs the Thrift server registers the same functions
(``pseudonym_functions_sql`` prints them for a key).

The session keeps its catalog (a Derby metastore) and tables under one directory,
``$ANOMALY_PIPELINE_SPARK_DIR``, so successive dbt invocations see the tables earlier ones built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from anomaly_pipeline.privacy import (
    IPV4_NETWORK_PREFIX,
    PSEUDONYM_HEX_CHARS,
    hmac_sha256_pads,
    ip_network_keys,
    pseudonym_key,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The dbt profile's target; ``spark`` selects Spark, anything else (default) DuckDB.
DBT_TARGET_ENV: Final = "ANOMALY_PIPELINE_DBT_TARGET"
#: The spark target's dbt-spark method (resources/dbt/profiles.yml): ``session`` (default) runs
#: Spark here; ``thrift`` / ``http`` reach a cluster, which needs no local session.
SPARK_METHOD_ENV: Final = "ANOMALY_PIPELINE_SPARK_METHOD"
#: Directory of the local session's metastore and tables (``session`` method).
SPARK_DIR_ENV: Final = "ANOMALY_PIPELINE_SPARK_DIR"
#: Folder or URI of the raw Parquet the Spark sources read (``raw_events/``, ``event_labels/``).
RAW_PARQUET_ENV: Final = "ANOMALY_PIPELINE_RAW_PARQUET"

#: A canonical dotted quad (Java regex), as ``privacy.ip_network`` accepts on its fast path.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = rf"^({_OCTET}\\.){{3}}{_OCTET}$"


def dbt_target() -> str:
    """The dbt target this process builds on: ``$ANOMALY_PIPELINE_DBT_TARGET``, else duckdb."""
    return os.environ.get(DBT_TARGET_ENV) or "duckdb"


def pseudonym_functions_sql(key: bytes) -> list[str]:
    """``CREATE TEMPORARY FUNCTION`` statements of ``pseudonymize`` and ``ip_network_key``.

    ``ip_network_key`` calls the Python UDF ``python_ip_network_key`` (``register_functions``)
    for anything but a canonical dotted quad.
    """
    inner_pad, outer_pad = hmac_sha256_pads(key)
    inner = f"sha2(concat(unhex('{inner_pad.hex()}'), encode(identifier, 'UTF-8')), 256)"
    hmac_hex = f"sha2(concat(unhex('{outer_pad.hex()}'), unhex({inner})), 256)"
    return [
        "create or replace temporary function pseudonymize(identifier string) returns string "
        f"return substr({hmac_hex}, 1, {PSEUDONYM_HEX_CHARS})",
        "create or replace temporary function ip_network_key(address string) returns string "
        f"return case when address rlike '{_DOTTED_QUAD}' "
        f"then pseudonymize(regexp_replace(address, '[0-9]+$', '0/{IPV4_NETWORK_PREFIX}')) "
        "else python_ip_network_key(address) end",
    ]


def register_functions(spark: SparkSession, key: bytes) -> None:
    """Register the pseudonym functions under ``key`` on ``spark`` (this session only)."""

    def python_ip_network_key(address: str | None) -> str | None:
        return ip_network_keys([address], key)[0]

    spark.udf.register("python_ip_network_key", python_ip_network_key, "string")
    for statement in pseudonym_functions_sql(key):
        spark.sql(statement)


def local_session(spark_dir: Path) -> SparkSession:
    """A local Spark session (every core) whose catalog and tables persist under ``spark_dir``.

    Hive support, as dbt-spark's session method asks for it; the metastore is an embedded Derby
    database in ``spark_dir`` (one process at a time, like the DuckDB file).
    """
    from pyspark.sql import SparkSession

    spark_dir = spark_dir.resolve()
    spark_dir.mkdir(parents=True, exist_ok=True)
    # The Python UDF's workers must run this interpreter (the project's venv), not PATH's python3:
    # pyspark reads the worker executable from this variable when the context starts.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    cores = os.cpu_count() or 1
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("anomaly_pipeline dbt")
        .enableHiveSupport()
        .config("spark.sql.warehouse.dir", str(spark_dir / "warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={spark_dir / 'metastore_db'};create=true",
        )
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={spark_dir}")
        .config("spark.sql.session.timeZone", "UTC")
        # Instants as Parquet's UTC-adjusted microseconds (not the legacy INT96), so other readers
        # of the tables (DuckDB, polars) see the same instants with their time zone.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # A day of one shop is small for Spark: AQE coalesces shuffles, and fewer initial
        # partitions save per-task overhead on one machine.
        .config("spark.sql.shuffle.partitions", str(2 * cores))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``anomaly-pipeline-dbt ARGS``: ``dbt ARGS``, on a prepared local Spark session when the
    target is spark (``$ANOMALY_PIPELINE_DBT_TARGET``) with the session method; plain dbt
    otherwise."""
    from dbt.cli.main import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if dbt_target() == "spark" and os.environ.get(SPARK_METHOD_ENV, "session") == "session":
        key = pseudonym_key()  # fails before Spark starts when the key is missing
        spark_dir = os.environ.get(SPARK_DIR_ENV)
        if not spark_dir:
            raise SystemExit(
                f"{SPARK_DIR_ENV} is not set: the folder of the local Spark session's "
                "metastore and tables"
            )
        register_functions(local_session(Path(spark_dir)), key)
    try:
        cli.main(args=args, prog_name="dbt", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
