"""The top reason names the signature: reasons of real features built by dbt from simulated and
fraud-log events (not hand-made rows), ranked by the coder fitted on the normal user-days.

One dbt run per source: seven simulated days with every anomaly type, and a month of the
generated "signup + purchase" fraud log (split into day files as onboarding does), whose fraud
rings buy a minute or two after signing up on an earlier or the same day.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from anomaly_signatures import SIGNATURES
from dbt_fixtures import TEST_PSEUDONYM_KEY, build_warehouse, dbt_day_vars, run_dbt
from fraud_log_history import write_fraud_log

from anomaly_pipeline.adapters.registry import source_reader
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.onboarding.history import split_history
from anomaly_pipeline.privacy import pseudonymize
from anomaly_pipeline.reasons import ReasonCoder
from anomaly_pipeline.schema import ANOMALY_TYPES
from anomaly_pipeline.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.slow

KEY = TEST_PSEUDONYM_KEY.encode()
#: Share of a type's user-days whose top reason must name its signature.
MIN_SHARE = 0.8


def _features(warehouse: Path, start: date, end: date) -> pl.DataFrame:
    run_dbt(["run", "--select", "+user_day_features", *dbt_day_vars(start, end)], warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql("select * from features.user_day_features").pl()


def _top_codes(normal: pl.DataFrame, rows: pl.DataFrame) -> list[str]:
    coder = ReasonCoder().fit(normal.select(FEATURE_COLUMNS), FEATURE_COLUMNS)
    return [codes[0] if codes else "" for codes in coder.explain(rows).codes]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """Seven simulated days' features with each user-day's anomaly type (null: normal)."""
    config = SimulationConfig(
        start_day=date(2026, 10, 1), n_days=7, n_users=600, seed=11, anomaly_share=0.05
    )
    sim = simulate(config)
    warehouse = build_warehouse(tmp_path_factory.mktemp("simulated"), sim.events, sim.labels)
    labels = sim.labels.select(
        pl.col("user_id").map_elements(lambda u: pseudonymize(u, KEY), return_dtype=pl.String),
        "event_day",
        "anomaly_type",
    ).rename({"user_id": "user_key"})
    features = _features(warehouse, config.start_day, config.days[-1])
    return features.join(labels, on=["user_key", "event_day"], how="left")


@pytest.mark.parametrize("anomaly_type", ANOMALY_TYPES)
def test_top_reason_names_the_signature_of_each_anomaly_type(
    simulated: pl.DataFrame, anomaly_type: str
) -> None:
    normal = simulated.filter(pl.col("anomaly_type").is_null())
    rows = simulated.filter(pl.col("anomaly_type") == anomaly_type)
    assert rows.height >= 5, f"too few {anomaly_type} user-days to judge"
    top = Counter(_top_codes(normal, rows))
    named = sum(n for code, n in top.items() if code in SIGNATURES[anomaly_type])
    assert named / rows.height >= MIN_SHARE, (anomaly_type, top.most_common())


def test_top_reason_of_a_signup_to_purchase_burst_is_the_delay(tmp_path: Path) -> None:
    """Fraud rings of the fraud log: the purchase a minute after signup leads, named with it."""
    start = datetime(2026, 3, 1)
    log = write_fraud_log(tmp_path / "fraud.csv", rows=1500, start=start, days=30)
    split = split_history(
        source_reader("fraud_log", time_format="%m/%d/%Y %H:%M"),
        log,
        landing_events=tmp_path / "landing",
        landing_labels=tmp_path / "labels",
        work_dir=tmp_path / "split",
        source="fraud",
        now=datetime.now(UTC),
    )
    events = pl.read_parquet(tmp_path / "landing" / "*.parquet").with_columns(
        pl.col("amount").cast(pl.Float64), pl.col("quantity").cast(pl.Int64)
    )
    warehouse = build_warehouse(tmp_path, events)
    features = _features(warehouse, split.days[0], split.days[-1])
    rings = pl.read_csv(log).filter(pl.col("class") == 1)["user_id"].cast(pl.String)
    ring_keys = {pseudonymize(user, KEY) for user in rings}
    is_ring = pl.col("user_key").is_in(list(ring_keys))
    normal = features.filter(~is_ring)
    bursts = features.filter(is_ring & (pl.col("n_purchases") > 0))
    assert bursts.height >= 30
    top = Counter(_top_codes(normal, bursts))
    assert top["purchase_right_after_signup"] / bursts.height >= 0.9, top.most_common()
    coder = ReasonCoder().fit(normal.select(FEATURE_COLUMNS), FEATURE_COLUMNS)
    text = coder.explain(bursts.head(1)).texts[0][0]
    assert text.startswith("purchase ") and " after signup" in text, text
