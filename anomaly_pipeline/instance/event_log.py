"""Dagster's SQLite event log, writing a batch of events in one transaction per database file.

Why: creating a run over a range of daily partitions stores one planned-materialization event per
asset and partition before the run starts — 4,465 events for a year of ``daily_job``. Dagster's
``SqliteEventLogStorage`` stores each in new connections with its own commits (≈ 5 connections and
3 commits an event, 48–65 ms on this machine), so a 365-day range waited 330 s to start. Dagster's
instance already hands such events over as one batch (``store_event_batch``) once
``DAGSTER_EVENT_BATCH_SIZE`` is set — the planned events of a run, a range step's per-partition
materializations — but the SQLite storage then still stores them one at a time.

This subclass keeps every record Dagster's own storage writes — each event still goes through
``store_event`` — and only lets the events of a batch share one connection and transaction per
database file (the run's shard and the cross-run index). It is the instance's event log in
``resources/dagster.yaml``; the files are where Dagster's default puts them
(``$DAGSTER_HOME/history/runs``), so an existing instance keeps its history.

It imports private Dagster modules, unlike the code location: a storage named in ``dagster.yaml``
can only extend Dagster's own class. tests/instance/test_event_log.py compares what it stores with
what Dagster's storage stores for the same run, so an upgrade that changes the base class fails
there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

#: Events the instance collects before handing them to ``store_event_batch`` (a batch also ends
#: where its producer ends it: the last planned event of a run, the last partition of a step).
EVENT_BATCH_SIZE = 10_000

#: Dagster's switch for batched event writes, read by the instance at each event.
BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` whose ``store_event_batch`` commits once per database file.

    Constructing it turns Dagster's batching on for the process (``DAGSTER_EVENT_BATCH_SIZE``,
    unless set already): every process that writes events — the CLI, the webserver, the daemon,
    a run worker — builds its instance's storage before its first event.
    """

    def __init__(self, dagster_home: str, inst_data: Any = None) -> None:
        os.environ.setdefault(BATCH_SIZE_VARIABLE, str(EVENT_BATCH_SIZE))
        self._dagster_home = dagster_home
        self._batch = threading.local()
        super().__init__(os.path.join(dagster_home, "history", "runs", ""), inst_data=inst_data)
        # Re-entrant: a batch holds the lock while each event's writes re-enter ``_connect``.
        self._db_lock = threading.RLock()  # type: ignore[assignment]

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"dagster_home": dg.StringSource}

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: Any, config_value: dict[str, Any]
    ) -> BatchingSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        """Inside a batch (this thread's), the batch's open transaction on ``shard``."""
        opened: dict[str, Any] | None = getattr(self._batch, "connections", None)
        if opened is None:
            with super()._connect(shard) as connection:
                yield connection
            return
        if shard not in opened:
            opened[shard] = self._batch.stack.enter_context(super()._connect(shard))
        yield opened[shard]

    def store_event_batch(self, events: Sequence[Any]) -> None:
        """Store ``events`` as ``store_event`` would, committing each database file once.

        An error rolls back what the batch wrote to the file that failed and to the files not yet
        committed; the instance then stores the events one by one.
        """
        last_of_asset = {
            event.dagster_event.asset_key: event
            for event in events
            if getattr(event, "dagster_event", None) and event.dagster_event.asset_key
        }
        with self._db_lock, ExitStack() as stack:
            self._batch.connections, self._batch.stack = {}, stack
            self._batch.last_of_asset = last_of_asset
            try:
                for event in events:
                    self.store_event(event)
            finally:
                del self._batch.connections, self._batch.stack, self._batch.last_of_asset

    def _store_asset_event(self, conn: Any, event: Any, event_id: int) -> None:
        """Within a batch, only an asset's last event updates its row of the asset table.

        The row holds the asset's latest run and event time, which each event of the batch would
        overwrite in turn (Dagster's PostgreSQL storage batches materializations the same way).
        """
        last_of_asset = getattr(self._batch, "last_of_asset", None)
        if (
            last_of_asset is not None
            and last_of_asset.get(event.dagster_event.asset_key) is not event
        ):
            return
        super()._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(self, event: Any, event_id: int | None) -> None:
        """One planned row per partition of the check, as Dagster writes them, in one executemany.

        Dagster's own method serializes the same event again for each partition's row and builds
        one multi-row INSERT statement: 93 checks × 365 days took ≈ 6 s of a year's run start.
        """
        planned = event.dagster_event.event_specific_data
        partition_keys = (
            planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        )
        common = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": dg.serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as connection:
            connection.execute(
                AssetCheckExecutionsTable.insert(),
                [{**common, "partition": key} for key in partition_keys],
            )
