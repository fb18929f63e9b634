"""The feature catalogue is the one source of the mart's columns, contract, docs and reasons."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_pipeline.feature_contract import USER_DAY_FEATURES_SCHEMA
from anomaly_pipeline.features import catalogue
from anomaly_pipeline.features.catalogue import (
    EVENT_COUNT_COLUMNS,
    FEATURE_COLUMNS,
    FEATURES,
    KEY_COLUMNS,
    Feature,
    Phrase,
)
from anomaly_pipeline.reasons import TEMPLATED_FEATURES, FeatureStats
from anomaly_pipeline.reasons.templates import COMPOSITES, feature_template
from anomaly_pipeline.schema import EVENT_TYPES


def test_generated_dbt_files_match_the_catalogue() -> None:
    """macros/catalogue.sql and models/marts/_marts.yml are checked in (dbt parses offline);
    a catalogue edit without `python -m anomaly_pipeline.features.catalogue --write` fails."""
    assert catalogue.stale_files() == []
    assert catalogue.main(["--check"]) == 0


def test_the_mart_yml_documents_every_column() -> None:
    text = catalogue.marts_yml()
    for name in (*KEY_COLUMNS, *FEATURE_COLUMNS):
        assert f"      - name: {name}\n        description: " in text, name


def test_contract_columns_are_the_keys_then_the_catalogue() -> None:
    assert tuple(USER_DAY_FEATURES_SCHEMA.columns) == (*KEY_COLUMNS, *FEATURE_COLUMNS)
    assert len(set(FEATURE_COLUMNS)) == len(FEATURES)


def test_every_event_type_has_a_count_feature() -> None:
    assert set(EVENT_COUNT_COLUMNS) == set(EVENT_TYPES)
    assert set(EVENT_COUNT_COLUMNS.values()) <= set(FEATURE_COLUMNS)


def test_every_feature_has_a_reason_template_naming_it() -> None:
    assert set(FEATURE_COLUMNS) == TEMPLATED_FEATURES
    for feature in FEATURES:
        if isinstance(feature.reason, str):
            assert feature.name in COMPOSITES[feature.reason].features


def test_a_feature_naming_a_missing_template_fails_clearly() -> None:
    feature = Feature("n_things", "Counts", "Things.", catalogue.COUNT, "high", "no_such")
    with pytest.raises(ValueError, match=r"n_things.*no_such"):
        feature_template(feature)


def test_a_phrase_reads_value_plural_and_comparison() -> None:
    feature = Feature(
        "n_things",
        "Counts",
        "Things.",
        catalogue.COUNT,
        "high",
        Phrase("many_things", "{value} thing{s} today"),
    )
    stats = {"n_things": FeatureStats.of(np.array([1.0, 2.0, 2.0, 3.0]), log=True)}
    render = feature_template(feature).render
    assert render({"n_things": 20.0}, "n_things", stats) == (
        "many_things",
        "20 things today, 10× the population median",
    )
    assert render({"n_things": 1.0}, "n_things", stats)[1].startswith("1 thing today")
