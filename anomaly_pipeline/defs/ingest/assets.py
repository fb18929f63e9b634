"""raw_events (+ quarantined_events) and event_labels: day partitions loaded from landing files.

Both read raw identifiers, so both refuse to start without a pseudonym key outside demo mode
(``privacy.pseudonym_key``): raw ids must not be collected where they cannot be pseudonymised.
"""

import dagster as dg
from pydantic import Field

from anomaly_pipeline import ingest
from anomaly_pipeline.delivery import DEFAULT_SETTLE_S
from anomaly_pipeline.paths import config_file
from anomaly_pipeline.privacy import pseudonym_key
from anomaly_pipeline.schema import DEFAULT_BOUNDS, NumericBounds
from anomaly_pipeline.defs.partitions import daily_partitions, partition_days, single_run_backfill
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource

ACCOUNTING_CHECK = "accepted_plus_quarantined_equals_input"


class RawEventsConfig(dg.Config):
    """Which landing files feed a day and how to read them (editable in the Launchpad)."""

    source_format: str = Field(
        default="canonical",
        description="Adapter: canonical | taobao | fraud_log | mapped (see README, 'Bring your own logs').")
    file_pattern: str = Field(
        default="events_{day}.*",
        description="Glob under landing/events that must contain {day} (replaced by the "
                    "partition's YYYY-MM-DD) and stay inside that folder.")
    mapping_file: str | None = Field(
        default=None, description="YAML column mapping, required by source_format=mapped; must "
                                  "lie in resources/ or $ANOMALY_PIPELINE_CONFIG_DIR.")
    max_amount: float = Field(default=DEFAULT_BOUNDS.max_amount, gt=0,
                              description="Largest accepted amount; larger ones are quarantined.")
    max_quantity: int = Field(default=DEFAULT_BOUNDS.max_quantity, gt=0,
                              description="Largest accepted quantity; larger ones are quarantined.")
    allow_empty_day: bool = Field(
        default=False, description="Let a day whose files hold no rows replace a day that holds "
                                   "rows (otherwise the run fails and nothing is replaced).")
    settle_seconds: float = Field(
        default=DEFAULT_SETTLE_S, ge=0,
        description="A file modified more recently is watched this long; if it changes it is "
                    "still being written and the run fails without reading it.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec("raw_events", group_name="ingest", kinds={"duckdb", "polars"},
                     description="Accepted events under the canonical contract, one partition per UTC day."),
        dg.AssetSpec("quarantined_events", group_name="ingest", kinds={"duckdb"},
                     description="Rejected rows with the partition, the rule, a readable reason and the original record."),
    ],
    check_specs=[dg.AssetCheckSpec(ACCOUNTING_CHECK, asset="raw_events", blocking=True,
                                   description="Every input row is either accepted or quarantined.")],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def raw_events(context: dg.AssetExecutionContext, config: RawEventsConfig,
               warehouse: WarehouseResource):
    """Read, clean and store the range's landing files; a malformed file fails the whole range."""
    pseudonym_key()  # no key outside demo mode: fail before reading any raw id
    mapping = config_file(config.mapping_file, setting="mapping_file") if config.mapping_file else None
    days = partition_days(context)
    home = warehouse.data_home
    report = ingest.load_events(
        warehouse.path, home.landing_events, days, source_format=config.source_format,
        pattern=config.file_pattern, mapping=mapping,
        bounds=NumericBounds(max_amount=config.max_amount, max_quantity=config.max_quantity),
        allow_empty_day=config.allow_empty_day, settle_s=config.settle_seconds)
    rules = dg.MetadataValue.md("\n".join(
        ["| rule | rows |", "|---|---|"] + [f"| {r} | {n} |" for r, n in report.rules.most_common()]
    )) if report.rules else dg.MetadataValue.text("no row quarantined")
    yield dg.MaterializeResult(asset_key="raw_events", metadata={
        "dagster/row_count": report.accepted_rows, "input_rows": report.input_rows,
        "files": dg.MetadataValue.json(report.files), "days": len(days)})
    yield dg.MaterializeResult(asset_key="quarantined_events", metadata={
        "dagster/row_count": report.quarantined_rows, "rules": rules})
    gaps = ingest.accounting_gaps(warehouse.path, days)
    yield dg.AssetCheckResult(
        asset_key="raw_events", check_name=ACCOUNTING_CHECK, passed=not gaps,
        metadata={"input_rows": report.input_rows,
                  "accepted_rows": report.accepted_rows,
                  "quarantined_rows": report.quarantined_rows,
                  "days_out_of_balance": dg.MetadataValue.json(
                      {str(d): {"stored": s, "input": i} for d, (s, i) in gaps.items()})})


@dg.asset(
    group_name="ingest", partitions_def=daily_partitions, backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"},
    description="Ground truth (user, day, anomaly_type) from a separate source; a day without a "
                "label file is recorded as unlabelled, not as all-normal.",
)
def event_labels(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    pseudonym_key()  # no key outside demo mode: fail before reading any raw id
    per_day = ingest.load_labels(warehouse.path, warehouse.data_home.landing_labels,
                                 partition_days(context))
    labelled = {str(d): n for d, n in per_day.items() if n is not None}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(labelled.values()), "labelled_days": len(labelled),
        "unlabelled_days": len(per_day) - len(labelled)})
