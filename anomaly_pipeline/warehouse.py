"""DuckDB storage helpers shared by every writer of the warehouse file.

Why a module of its own: every partitioned table is rewritten per partition range — delete the
range, insert the new rows, in one transaction — so a rerun or a backfill never duplicates rows and
a failure leaves the previous rows in place. Connections are short-lived because DuckDB allows one
writing process per file (dbt runs in a subprocess between our writes).

Locking, as measured with duckdb 1.5.6 across processes: a read-write connection holds an
exclusive lock on the file, a read-only one a shared lock. So two read-only processes coexist, but
a read-only open fails ("Could not set lock on file … Conflicting lock is held") while another
process writes, and a writer fails while anyone reads. Read-only is therefore no escape from the
writer pool: every Dagster step that opens the file runs in the ``duckdb_warehouse`` pool (readers
included), and readers open it read-only so that they can never write by mistake and can share the
file with outside read-only tools (a notebook, ``make demo``'s summary). A conflicting lock held by
such an outside process is waited out for ``LOCK_WAIT_S`` before the error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

#: DuckDB type of each polars dtype we store; anything else is a programming error.
_DUCKDB_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Float64: "DOUBLE",
    pl.Float32: "FLOAT",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Int16: "SMALLINT",
    pl.Int8: "TINYINT",
    pl.UInt32: "UINTEGER",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
}


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB column type for a polars dtype (lists and UTC datetimes included)."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.List):
        inner = dtype.inner if isinstance(dtype.inner, pl.DataType) else dtype.inner()
        return f"{duckdb_type(inner)}[]"
    for base, name in _DUCKDB_TYPES.items():
        if isinstance(dtype, base):
            return name
    raise TypeError(f"no DuckDB type for polars dtype {dtype}")


#: How long an open waits for a conflicting lock held by a process outside the writer pool.
LOCK_WAIT_S = 30.0


@contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, lock_wait_s: float = LOCK_WAIT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that is always closed, with UTC as the session time zone.

    A file locked by another process is retried for ``lock_wait_s`` seconds, then the lock error
    is raised.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "Could not set lock" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        yield conn
    finally:
        conn.close()


def ensure_table(
    conn: duckdb.DuckDBPyConnection, table: str, schema: dict[str, pl.DataType]
) -> None:
    """Create schema and table from a polars schema if they do not exist yet."""
    schema_name, _, _ = table.rpartition(".")
    if schema_name:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_name}")
    columns = ", ".join(f'"{name}" {duckdb_type(dtype)}' for name, dtype in schema.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema_name, _, name = table.rpartition(".")
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = ?",
        [name, schema_name or "main"],
    ).fetchone()
    return bool(row and row[0])


class PartitionWriter:
    """Inserts into tables whose ``days`` were emptied at the start of an open transaction.

    Made by ``partition_writer``; frames may come in any number of batches, so a day need not be
    whole in memory to be replaced atomically.
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        tables: Mapping[str, Mapping[str, pl.DataType]],
        days: Sequence[date],
        day_column: str,
    ) -> None:
        self._conn = conn
        self._tables = tables
        self._days = list(days)
        self._day_column = day_column
        #: Rows each table held for each day before they were deleted (table → day → rows).
        self.stored_before: dict[str, dict[date, int]] = {}
        for table, schema in tables.items():
            ensure_table(conn, table, dict(schema))
            counts = dict.fromkeys(self._days, 0)
            counts.update(
                conn.execute(
                    f"SELECT {day_column}, count(*) FROM {table} "
                    f"WHERE {day_column} = ANY(?) GROUP BY 1",
                    [self._days],
                ).fetchall()
            )
            self.stored_before[table] = counts
            conn.execute(f"DELETE FROM {table} WHERE {day_column} = ANY(?)", [self._days])

    def insert(self, table: str, frame: pl.DataFrame) -> int:
        """Append ``frame`` to ``table``; rows outside the days are a caller bug and raise."""
        if table not in self._tables:
            raise ValueError(f"{table} was not opened for writing (opened: {list(self._tables)})")
        if not frame.height:
            return 0
        stray = frame.filter(~pl.col(self._day_column).is_in(self._days))
        if stray.height:
            raise ValueError(
                f"{stray.height} rows for {table} fall outside the partitions {self._days}"
            )
        self._conn.register("incoming", frame.to_arrow())
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        self._conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming")
        self._conn.unregister("incoming")
        return frame.height


@contextmanager
def partition_writer(
    path: str | Path,
    tables: Mapping[str, Mapping[str, pl.DataType]],
    days: Sequence[date],
    *,
    day_column: str = "event_day",
) -> Iterator[PartitionWriter]:
    """One transaction that empties ``days`` of every table in ``tables`` (name → polars schema,
    created if missing) and takes their new rows in batches: committed when the block ends,
    rolled back (the previous rows stay) when it raises."""
    with connect(path) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            yield PartitionWriter(conn, tables, days, day_column)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def replace_partitions(
    path: str | Path,
    table: str,
    frame: pl.DataFrame,
    days: Sequence[date],
    *,
    day_column: str = "event_day",
) -> int:
    """Atomically replace the rows of ``days`` in ``table`` with ``frame``; return rows inserted.

    Rows of ``frame`` outside ``days`` are a caller bug and raise; nothing is changed then.
    """
    with partition_writer(path, {table: frame.schema}, days, day_column=day_column) as writer:
        return writer.insert(table, frame)


def read_days(
    path: str | Path,
    table: str,
    days: Sequence[date],
    *,
    day_column: str = "event_day",
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Rows of ``table`` for ``days`` as a polars frame (empty frame if the table is missing)."""
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    if not Path(path).exists():
        return pl.DataFrame()
    with connect(path, read_only=True) as conn:
        if not table_exists(conn, table):
            return pl.DataFrame()
        return conn.execute(
            f"SELECT {selected} FROM {table} WHERE {day_column} = ANY(?)", [list(days)]
        ).pl()


def count_by_day(
    path: str | Path, table: str, days: Sequence[date], *, day_column: str = "event_day"
) -> dict[date, int]:
    """Row count of ``table`` per day (0 for days without rows or a missing table)."""
    counts = {day: 0 for day in days}
    if not Path(path).exists():
        return counts
    with connect(path, read_only=True) as conn:
        if not table_exists(conn, table):
            return counts
        for day, n in conn.execute(
            f"SELECT {day_column}, count(*) FROM {table} WHERE {day_column} = ANY(?) GROUP BY 1",
            [list(days)],
        ).fetchall():
            counts[day] = n
    return counts
