"""Outcome policy: the default rules file, vectorised outcomes and precise validation errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.paths import CONFIG_DIR_ENV, ConfigPathError, config_file
from anomaly_pipeline.policy import PolicyError, load_policy

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "resources" / "policy.yaml"

BASE = {
    "version": 1,
    "bands": [
        {"min": 0, "max": 800, "outcome": "allow"},
        {"min": 800, "max": 900, "outcome": "review"},
        {"min": 900, "max": 1000, "outcome": "block"},
    ],
    "hard_rules": [
        {
            "name": "instant_purchase_shared_device",
            "outcome": "block",
            "when": [
                {"feature": "first_purchase_delay_s", "op": "<=", "value": 60},
                {"feature": "users_per_device_day", "op": ">=", "value": 3},
            ],
        },
        {
            "name": "many_reviews",
            "outcome": "review",
            "when": [{"feature": "n_reviews", "op": ">", "value": 10}],
        },
    ],
}


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _frame(**columns: list[float]) -> pl.DataFrame:
    n = len(columns["score"])
    defaults = {
        "first_purchase_delay_s": [604800.0] * n,
        "users_per_device_day": [1.0] * n,
        "n_reviews": [0.0] * n,
    }
    return pl.DataFrame({"user_key": [f"u{i}" for i in range(n)], **defaults, **columns})


def test_default_policy_loads_against_the_feature_contract() -> None:
    policy = load_policy(DEFAULT_POLICY, feature_names=FEATURE_COLUMNS)
    assert [b.outcome for b in policy.bands] == ["allow", "review", "block"]
    assert policy.bands[0].lower == 0 and policy.bands[-1].upper == 1000
    assert {r.name for r in policy.hard_rules} >= {"instant_purchase_on_shared_device"}


def test_bands_decide_and_edges_are_half_open(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    out = policy.apply(_frame(score=[0.0, 799.9, 800.0, 899.99, 900.0, 1000.0]))
    assert out["outcome"].to_list() == ["allow", "allow", "review", "review", "block", "block"]
    assert out["matched_rule"].null_count() == out.height
    assert out.columns[:2] == ["user_key", "first_purchase_delay_s"]  # input kept as is


def test_hard_rules_raise_but_never_relax_the_outcome(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    out = policy.apply(
        _frame(
            score=[100.0, 100.0, 950.0, 100.0, 850.0, 100.0],
            first_purchase_delay_s=[42.0, 42.0, 42.0, 604800.0, 604800.0, 30.0],
            users_per_device_day=[5.0, 2.0, 5.0, 1.0, 1.0, 4.0],
            n_reviews=[0.0, 0.0, 0.0, 12.0, 12.0, 20.0],
        )
    )
    assert out["outcome"].to_list() == ["block", "allow", "block", "review", "review", "block"]
    # the rule is named only where it decided: the strictest matching rule wins
    assert out["matched_rule"].to_list() == [
        "instant_purchase_shared_device",
        None,
        None,
        "many_reviews",
        None,
        "instant_purchase_shared_device",
    ]


def test_apply_refuses_missing_columns_and_out_of_range_scores(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    with pytest.raises(ValueError, match=r"needs column\(s\) \['n_reviews'\]"):
        policy.apply(_frame(score=[1.0]).drop("n_reviews"))
    with pytest.raises(ValueError, match=r"'score' must be a number in \[0, 1000\]; 2 row"):
        policy.apply(_frame(score=[1001.0, -1.0, 5.0]))
    with pytest.raises(ValueError, match="null"):
        policy.apply(_frame(score=[None, 5.0]))


def _error(tmp_path: Path, document: object, **kwargs: object) -> str:
    path = _write(tmp_path, document)
    with pytest.raises(PolicyError) as info:
        load_policy(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def test_unknown_field_is_named(tmp_path: Path) -> None:
    assert "bands[1].outcom: unknown field (allowed: min, max, outcome, description)" in _error(
        tmp_path,
        {
            **BASE,
            "bands": [
                BASE["bands"][0],
                {"min": 800, "max": 900, "outcom": "review"},
                BASE["bands"][2],
            ],
        },
    )
    assert ": threshold: unknown field" in _error(tmp_path, {**BASE, "threshold": 3})


def test_bands_out_of_order(tmp_path: Path) -> None:
    bands = [BASE["bands"][0], BASE["bands"][2], BASE["bands"][1]]
    assert "bands[2].min: bands are out of order: 800 is below bands[1].min 900" in _error(
        tmp_path, {**BASE, "bands": bands}
    )


def test_overlapping_bands(tmp_path: Path) -> None:
    bands = [BASE["bands"][0], {"min": 750, "max": 900, "outcome": "review"}, BASE["bands"][2]]
    assert "bands[1].min: overlaps bands[0] (0–800); it must start at 800" in _error(
        tmp_path, {**BASE, "bands": bands}
    )


def test_bands_must_cover_0_to_1000(tmp_path: Path) -> None:
    gap = [BASE["bands"][0], {"min": 850, "max": 1000, "outcome": "block"}]
    assert "bands[1].min: gap between 800 and 850" in _error(tmp_path, {**BASE, "bands": gap})
    short = [{"min": 0, "max": 990, "outcome": "allow"}]
    assert "bands[0].max: the last band must end at 1000" in _error(
        tmp_path, {**BASE, "bands": short}
    )
    late = [{"min": 10, "max": 1000, "outcome": "allow"}]
    assert "bands[0].min: the first band must start at 0" in _error(
        tmp_path, {**BASE, "bands": late}
    )


def test_unknown_outcome_and_lenient_higher_band(tmp_path: Path) -> None:
    bands = [BASE["bands"][0], {"min": 800, "max": 1000, "outcome": "deny"}]
    message = _error(tmp_path, {**BASE, "bands": bands})
    assert "bands[1].outcome: unknown outcome; use one of" in message and "deny" not in message
    bands = [
        {"min": 0, "max": 500, "outcome": "review"},
        {"min": 500, "max": 1000, "outcome": "allow"},
    ]
    assert "bands[1].outcome: 'allow' is more lenient" in _error(tmp_path, {**BASE, "bands": bands})


def test_bad_op(tmp_path: Path) -> None:
    rules = [
        {
            "name": "r",
            "outcome": "block",
            "when": [{"feature": "n_reviews", "op": "=>", "value": 3}],
        }
    ]
    assert (
        "hard_rules[0].when[0].op: bad op; use one of ['<', '<=', '>', '>=', '==', '!=']"
    ) in _error(tmp_path, {**BASE, "hard_rules": rules})


def test_rule_errors_name_the_key_path(tmp_path: Path) -> None:
    unknown_feature = [
        {"name": "r", "outcome": "block", "when": [{"feature": "n_reveiws", "op": ">", "value": 3}]}
    ]
    assert "hard_rules[0].when[0].feature: unknown feature" in _error(
        tmp_path, {**BASE, "hard_rules": unknown_feature}, feature_names=FEATURE_COLUMNS
    )
    not_a_number = [
        {
            "name": "r",
            "outcome": "block",
            "when": [{"feature": "n_reviews", "op": ">", "value": "3; drop"}],
        }
    ]
    assert "hard_rules[0].when[0].value: must be a number" in _error(
        tmp_path, {**BASE, "hard_rules": not_a_number}
    )
    duplicate = [BASE["hard_rules"][0], BASE["hard_rules"][0]]
    assert "hard_rules[1].name: duplicate rule name" in _error(
        tmp_path, {**BASE, "hard_rules": duplicate}
    )
    empty = [{"name": "r", "outcome": "block", "when": []}]
    assert "hard_rules[0].when: must be a non-empty list" in _error(
        tmp_path, {**BASE, "hard_rules": empty}
    )
    assert "bands: required field is missing" in _error(tmp_path, {"hard_rules": []})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("bands: [\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_integer_scores_are_accepted(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, BASE))
    out = policy.apply(_frame(score=[10, 950]).with_columns(pl.col("score").cast(pl.Int64)))
    assert out["outcome"].to_list() == ["allow", "block"]


def test_policy_file_must_lie_in_a_configuration_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_file("resources/policy.yaml", setting="policy_file") == DEFAULT_POLICY
    outside = tmp_path / "policy.yaml"
    outside.write_text("bands: secret-value\n")
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    for named in (str(outside), "resources/../../../../etc/passwd"):
        with pytest.raises(ConfigPathError, match=r"policy_file .* is outside the folders"):
            config_file(named, setting="policy_file")
    link = DEFAULT_POLICY.parent / "mappings"  # a folder inside resources/ is fine
    assert config_file(link / "example_clickstream.yaml", setting="mapping_file").is_file()
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    assert config_file(outside, setting="policy_file") == outside.resolve()


def test_policy_errors_quote_no_values(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("bands:\n  - min: 0\n    max: [secret-value\n")
    with pytest.raises(PolicyError) as error:
        load_policy(broken)
    assert "not valid YAML at line 4" in str(error.value)
    assert "secret-value" not in str(error.value)
