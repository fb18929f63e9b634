"""raw_events (+ quarantined_events) and event_labels: day partitions loaded from landing files.

Both read raw identifiers, so both refuse to start without a pseudonym key outside demo mode
(``privacy.pseudonym_key``): raw ids must not be collected where they cannot be pseudonymised.
"""

import dagster as dg
from pydantic import Field

from anomaly_pipeline import feedback, ingest
from anomaly_pipeline.defs.partitions import (
    add_metadata_per_day,
    check_results_per_day,
    daily_partitions,
    partition_days,
    single_run_backfill,
)
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from anomaly_pipeline.delivery import DEFAULT_SETTLE_S
from anomaly_pipeline.paths import config_file
from anomaly_pipeline.privacy import pseudonym_key
from anomaly_pipeline.schema import DEFAULT_BOUNDS, NumericBounds

ACCOUNTING_CHECK = "accepted_plus_quarantined_equals_input"
FEEDBACK_ACCOUNTING_CHECK = "feedback_accepted_plus_quarantined_equals_input"


class RawEventsConfig(dg.Config):
    """Which landing files feed a day and how to read them (editable in the Launchpad)."""

    source_format: str = Field(
        default="canonical",
        description="Adapter: canonical | taobao | fraud_log | mapped "
        "(see README, 'Bring your own logs').",
    )
    file_pattern: str = Field(
        default="events_{day}.*",
        description="Glob under landing/events that must contain {day} (replaced by the "
        "partition's YYYY-MM-DD) and stay inside that folder.",
    )
    mapping_file: str | None = Field(
        default=None,
        description="YAML column mapping, required by source_format=mapped; must "
        "lie in resources/ or $ANOMALY_PIPELINE_CONFIG_DIR.",
    )
    time_format: str | None = Field(
        default=None,
        description="Time format of the files: strftime (e.g. '%m/%d/%Y %H:%M') or unix_s | "
        "unix_ms | iso8601; empty = the format's own (taobao: unix_s, else iso8601).",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone of times without an offset (converted to UTC); empty = UTC "
        "(mapped: the mapping's).",
    )
    max_amount: float = Field(
        default=DEFAULT_BOUNDS.max_amount,
        gt=0,
        description="Largest accepted amount; larger ones are quarantined.",
    )
    max_quantity: int = Field(
        default=DEFAULT_BOUNDS.max_quantity,
        gt=0,
        description="Largest accepted quantity; larger ones are quarantined.",
    )
    allow_empty_day: bool = Field(
        default=False,
        description="Let a day whose files hold no rows replace a day that holds "
        "rows (otherwise the run fails and nothing is replaced).",
    )
    settle_seconds: float = Field(
        default=DEFAULT_SETTLE_S,
        ge=0,
        description="A file modified more recently is watched this long; if it changes it is "
        "still being written and the run fails without reading it.",
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "raw_events",
            group_name="ingest",
            kinds={"duckdb", "polars"},
            description="Accepted events under the canonical contract, one partition per UTC day.",
        ),
        dg.AssetSpec(
            "quarantined_events",
            group_name="ingest",
            kinds={"duckdb"},
            description="Rejected rows with the partition, the rule, a readable reason "
            "and the original record.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            ACCOUNTING_CHECK,
            asset="raw_events",
            blocking=True,
            partitions_def=daily_partitions,
            description="Every input row of the day is either accepted or quarantined.",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def raw_events(
    context: dg.AssetExecutionContext, config: RawEventsConfig, warehouse: WarehouseResource
):
    """Read, clean and store the range's landing files; a malformed file fails the whole range.

    Row counts, files and quarantine rules are reported per partition day, as is the accounting
    check, so a day of a range run shows that day's figures.
    """
    pseudonym_key()  # no key outside demo mode: fail before reading any raw id
    mapping = (
        config_file(config.mapping_file, setting="mapping_file") if config.mapping_file else None
    )
    days = partition_days(context)
    home = warehouse.data_home
    ingest.load_events(
        warehouse.path,
        home.landing_events,
        days,
        source_format=config.source_format,
        pattern=config.file_pattern,
        mapping=mapping,
        time_format=config.time_format or None,
        time_zone=config.timezone or None,
        bounds=NumericBounds(max_amount=config.max_amount, max_quantity=config.max_quantity),
        allow_empty_day=config.allow_empty_day,
        settle_s=config.settle_seconds,
    )
    figures = ingest.day_figures(warehouse.path, days)
    add_metadata_per_day(
        context,
        {
            day: {
                "dagster/row_count": f.accepted_rows,
                "input_rows": f.input_rows,
                "files": dg.MetadataValue.json(f.files),
            }
            for day, f in figures.items()
        },
        "raw_events",
    )
    add_metadata_per_day(
        context,
        {
            day: {"dagster/row_count": f.quarantined_rows, "rules": _rules_table(f.rules)}
            for day, f in figures.items()
        },
        "quarantined_events",
    )
    yield dg.MaterializeResult(asset_key="raw_events")
    yield dg.MaterializeResult(asset_key="quarantined_events")
    gaps = ingest.accounting_gaps(warehouse.path, days)
    yield from check_results_per_day(
        context,
        dg.AssetCheckKey(dg.AssetKey("raw_events"), ACCOUNTING_CHECK),
        {
            day: dg.AssetCheckResult(
                passed=day not in gaps,
                metadata={
                    "input_rows": f.input_rows,
                    "accepted_rows": f.accepted_rows,
                    "quarantined_rows": f.quarantined_rows,
                    "stored_rows": f.accepted_rows + f.quarantined_rows,
                },
            )
            for day, f in figures.items()
        },
    )


def _rules_table(rules: dict[str, int]) -> dg.MetadataValue:
    if not rules:
        return dg.MetadataValue.text("no row quarantined")
    return dg.MetadataValue.md(
        "\n".join(["| rule | rows |", "|---|---|"] + [f"| {r} | {n} |" for r, n in rules.items()])
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "event_labels",
            group_name="ingest",
            kinds={"duckdb", "polars"},
            description="Ground truth of a day: source labels (user, day, anomaly_type; a day "
            "without a label file is unlabelled, not all-normal) and analysts' verdicts on alerts "
            "(feedback_<day>*.csv → raw.analyst_feedback; bad rows → raw.quarantined_feedback).",
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            FEEDBACK_ACCOUNTING_CHECK,
            asset="event_labels",
            partitions_def=daily_partitions,
            description="Every row of the day's feedback files is either accepted or "
            "quarantined (raw.quarantined_feedback).",
        )
    ],
    # selectable without its check, like every asset whose only other checks are dbt's tests
    can_subset=True,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def event_labels(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Load the range's label files and feedback files; training reads both per user-day with
    the precedence of ``anomaly_pipeline.labels`` (an analyst's verdict beats a source label)."""
    pseudonym_key()  # no key outside demo mode: fail before reading any raw id
    days = partition_days(context)
    labels_dir = warehouse.data_home.landing_labels
    per_day = ingest.load_labels(warehouse.path, labels_dir, days)
    verdicts = feedback.load_feedback(warehouse.path, labels_dir, days)
    add_metadata_per_day(
        context,
        {
            day: {
                "dagster/row_count": n or 0,
                "labelled": n is not None,
                "feedback_rows": verdicts.per_day[day][1],
                "feedback_quarantined": verdicts.per_day[day][2],
            }
            for day, n in per_day.items()
        },
    )
    yield dg.MaterializeResult(asset_key="event_labels")
    check_key = dg.AssetCheckKey(dg.AssetKey("event_labels"), FEEDBACK_ACCOUNTING_CHECK)
    if check_key not in context.selected_asset_check_keys:
        return
    stored = feedback.stored_counts(warehouse.path, days)
    yield from check_results_per_day(
        context,
        check_key,
        {
            day: dg.AssetCheckResult(
                passed=sum(stored[day]) == read[0],
                metadata={
                    "input_rows": read[0],
                    "accepted_rows": stored[day][0],
                    "quarantined_rows": stored[day][1],
                },
            )
            for day, read in verdicts.per_day.items()
        },
    )
