"""DuckDB storage helpers shared by every writer of the warehouse file.

Why a module of its own: every partitioned table is rewritten per partition range — the new rows
are staged, then the range is deleted and the staged rows inserted in one transaction — so a rerun
or a backfill never duplicates rows and a failure leaves the previous rows in place. Connections
are short-lived because DuckDB allows one writing process per file (dbt runs in a subprocess
between our writes).

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

import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final, Protocol

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


def staging_dir(path: str | Path) -> Path:
    """Folder of the staged batches of an open ``partition_writer`` on the warehouse ``path``
    (next to the file). One writer per file at a time (the ``duckdb_warehouse`` pool, and DuckDB's
    file lock across processes), so a folder found here when a writer opens is a killed writer's
    leftover: it is deleted unread."""
    path = Path(path)
    return path.with_name(f"{path.name}.staging")


#: Compression of the staged batch files: fast to write and read back once.
_STAGING_COMPRESSION: Final = "lz4"
#: The rows of the staged files ``$staged``, columns matched by name across batches.
_READ_STAGED = "read_parquet($staged, union_by_name = true)"


class PartitionWriter:
    """Stages the new rows of ``days`` batch by batch, then replaces the days with them at once.

    Made by ``partition_writer``. Why staging rather than one transaction around every batch: a
    DuckDB transaction holding a whole day's appended batches grew the process by ≈ 0.075 GiB per
    500,000 events (≈ 1.5 GiB for a 10 M-event day, README "Benchmarks"), while staged batches
    are written out and let go. Why Parquet files rather than DuckDB staging tables: each batch
    committed into a table was compressed into the file once there and once more when copied into
    the real table (≈ 45 % of a 10 M-event ingest); a Parquet file of a batch is written in a
    fraction of that. Each ``insert`` writes one file of ``staging_dir``; ``publish`` then
    deletes the days from the tables and inserts the staged files' rows (by column name, in the
    order they were staged), in one transaction that DuckDB runs out of core.

    ``keep_row_order=False`` lets DuckDB insert the staged files in parallel, in any row order
    (``preserve_insertion_order``): for tables that every reader queries with its own ORDER BY,
    it cut the publish of a 10 M-event day from 28 s to 21 s (2 cores).
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        tables: Mapping[str, Mapping[str, pl.DataType]],
        days: Sequence[date],
        day_column: str,
        directory: Path,
        *,
        keep_row_order: bool = True,
    ) -> None:
        self._conn = conn
        self._keep_row_order = keep_row_order
        self._days = list(days)
        self._day_column = day_column
        self._directory = directory
        #: Columns of each table written.
        self._columns: dict[str, list[str]] = {}
        #: Staged files of each table written, in insertion order.
        self._staged: dict[str, list[Path]] = {}
        #: Rows each table held for each day before this writer (table → day → rows).
        self.stored_before: dict[str, dict[date, int]] = {}
        directory.mkdir()
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
            self._columns[table] = [row[0] for row in conn.execute(f"DESCRIBE {table}").fetchall()]
            self._staged[table] = []

    def _staged_files(self, table: str) -> list[Path]:
        if table not in self._staged:
            raise ValueError(f"{table} was not opened for writing (opened: {list(self._staged)})")
        return self._staged[table]

    def insert(self, table: str, frame: pl.DataFrame) -> int:
        """Stage ``frame`` for ``table``; rows outside the days or columns the table lacks are a
        caller bug and raise."""
        staged = self._staged_files(table)
        if not frame.height:
            return 0
        unknown = [c for c in frame.columns if c not in self._columns[table]]
        if unknown:
            raise ValueError(f"{table} has no column(s) {unknown}")
        stray = frame.filter(~pl.col(self._day_column).is_in(self._days))
        if stray.height:
            raise ValueError(
                f"{stray.height} rows for {table} fall outside the partitions {self._days}"
            )
        file = self._directory / f"{table}.{len(staged):06d}.parquet"
        frame.write_parquet(file, compression=_STAGING_COMPRESSION)
        staged.append(file)
        return frame.height

    def _staged_paths(self, table: str) -> dict[str, list[str]]:
        """The ``$staged`` parameter of ``_READ_STAGED`` for ``table``."""
        return {"staged": [str(file) for file in self._staged[table]]}

    def staged_matches(
        self, table: str, keys: pl.DataFrame, columns: Sequence[str]
    ) -> pl.DataFrame:
        """``columns`` of the rows staged so far for ``table`` whose values in ``keys``' columns
        equal a row of ``keys``: what earlier batches wrote that a new batch must know about
        (e.g. its event ids), without the caller keeping every batch in memory."""
        selected = ", ".join(f'staged."{c}"' for c in columns)
        if not self._staged_files(table):
            return self._conn.execute(f"SELECT {selected} FROM {table} AS staged LIMIT 0").pl()
        self._conn.register("wanted", keys.unique().to_arrow())
        on = " AND ".join(f'staged."{c}" = wanted."{c}"' for c in keys.columns)
        try:
            return self._conn.execute(
                f"SELECT {selected} FROM {_READ_STAGED} AS staged SEMI JOIN wanted ON {on}",
                self._staged_paths(table),
            ).pl()
        finally:
            self._conn.unregister("wanted")

    def publish(self) -> None:
        """Replace the days of every table with the staged rows, in one transaction."""
        if not self._keep_row_order:
            self._conn.execute("SET preserve_insertion_order = false")
        self._conn.execute("BEGIN TRANSACTION")
        try:
            for table, files in self._staged.items():
                self._conn.execute(
                    f"DELETE FROM {table} WHERE {self._day_column} = ANY(?)", [self._days]
                )
                if files:
                    self._conn.execute(
                        f"INSERT INTO {table} BY NAME SELECT * FROM {_READ_STAGED}",
                        self._staged_paths(table),
                    )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        finally:
            # A global DuckDB setting, shared by any other connection this process holds on the
            # file: reset what this publish set, and only that.
            if not self._keep_row_order:
                self._conn.execute("RESET preserve_insertion_order")


@contextmanager
def partition_writer(
    path: str | Path,
    tables: Mapping[str, Mapping[str, pl.DataType]],
    days: Sequence[date],
    *,
    day_column: str = "event_day",
    keep_row_order: bool = True,
) -> Iterator[PartitionWriter]:
    """Replace ``days`` of every table in ``tables`` (name → polars schema, created if missing)
    with the rows inserted in the block, in batches of any number: published when the block
    ends, and when it raises, not at all (the previous rows stay). The staged files are
    deleted either way; a killed writer's are deleted by the next writer of the file.
    ``keep_row_order``: see ``PartitionWriter``."""
    directory = staging_dir(path)
    with connect(path) as conn:
        shutil.rmtree(directory, ignore_errors=True)
        try:
            writer = PartitionWriter(
                conn, tables, days, day_column, directory, keep_row_order=keep_row_order
            )
            yield writer
            writer.publish()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


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
    if not Path(path).exists():
        return pl.DataFrame()
    with connect(path, read_only=True) as conn:
        return _select_days(conn, table, days, day_column, columns)


@dataclass(frozen=True)
class HashPart:
    """Part ``index`` of ``count`` of a table's rows, split by a hash of ``column``: every row of
    one ``column`` value falls in the same part (e.g. all events of a user)."""

    column: str
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"part {self.index} of {self.count} does not exist")

    def sql(self) -> str:
        return f'hash("{self.column}") % {self.count} = {self.index}'


def _select_days(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    days: Sequence[date],
    day_column: str,
    columns: Sequence[str] | None,
    part: HashPart | None = None,
) -> pl.DataFrame:
    if not table_exists(conn, table):
        return pl.DataFrame()
    selected = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    in_part = f" AND {part.sql()}" if part else ""
    return conn.execute(
        f"SELECT {selected} FROM {table} WHERE {day_column} = ANY(?){in_part}", [list(days)]
    ).pl()


def count_by_day(
    path: str | Path, table: str, days: Sequence[date], *, day_column: str = "event_day"
) -> dict[date, int]:
    """Row count of ``table`` per day (0 for days without rows or a missing table)."""
    counts = dict.fromkeys(days, 0)
    counts.update(value_counts(path, table, days, day_column, day_column=day_column))
    return counts


def value_counts(
    path: str | Path,
    table: str,
    days: Sequence[date],
    column: str,
    *,
    day_column: str = "event_day",
) -> dict[Any, int]:
    """Rows of ``days`` in ``table`` per value of ``column`` (None: null); empty for a missing
    table. Counted in DuckDB: a 10 M-event day's values read into Python took 3.4 s."""
    if not Path(path).exists():
        return {}
    with connect(path, read_only=True) as conn:
        if not table_exists(conn, table):
            return {}
        rows = conn.execute(
            f'SELECT "{column}", count(*) FROM {table} WHERE {day_column} = ANY(?) GROUP BY 1',
            [list(days)],
        ).fetchall()
    return dict(rows)


class DayReader(Protocol):
    """Reads ``table``'s rows of ``days`` (optionally only ``columns``) as a polars frame, empty
    when the table is missing: ``read_days`` bound to a path, or ``read_days_in`` to a writer."""

    def __call__(
        self, table: str, days: Sequence[date], *, columns: Sequence[str] | None = None
    ) -> pl.DataFrame: ...


def read_days_in(
    writer: PartitionWriter,
    table: str,
    days: Sequence[date],
    *,
    day_column: str = "event_day",
    columns: Sequence[str] | None = None,
    part: HashPart | None = None,
) -> pl.DataFrame:
    """``read_days`` through ``writer``'s connection (only the rows of ``part``, if given).

    Why: a step that reads its input day by day while a writer stages its output cannot open a
    second, read-only connection — DuckDB refuses a second configuration of a file
    one process already holds — so it reads through the writer's connection.
    """
    return _select_days(writer._conn, table, days, day_column, columns, part)


def day_chunks(days: Sequence[date], size: int) -> list[list[date]]:
    """``days`` in consecutive chunks of at most ``size`` days (the unit a range step holds in
    memory at a time)."""
    if size < 1:
        raise ValueError(f"chunks need at least one day, got {size}")
    return [list(days[start : start + size]) for start in range(0, len(days), size)]
