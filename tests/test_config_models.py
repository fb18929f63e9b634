"""Typed configs (policy file, source mapping, training spec): a typo anywhere names its key
path, no message quotes a file's values, and each default is defined once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anomaly_pipeline.adapters.mapping import MappingError, parse_mapping
from anomaly_pipeline.config_model import key_path
from anomaly_pipeline.defs.training.assets import AnomalyModelConfig, training_spec
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.nn.settings import TrainerSettings
from anomaly_pipeline.policy import PolicyError, load_policy
from anomaly_pipeline.training_set import TrainingSetInfo
from anomaly_pipeline.training_spec import KINDS, SpecError, TrainingSpec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2-do-not-print"


def _policy() -> dict:
    return yaml.safe_load((ROOT / "resources" / "policy.yaml").read_text())


def _mapping() -> dict:
    path = ROOT / "resources" / "mappings" / "example_clickstream.yaml"
    return yaml.safe_load(path.read_text())


def _policy_error(tmp_path: Path, document: object) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    return str(error.value)


def _mapping_error(document: object) -> str:
    with pytest.raises(MappingError) as error:
        parse_mapping(document, origin="m.yaml")
    return str(error.value)


def test_key_paths_read_like_the_file() -> None:
    assert key_path(("hard_rules", 2, "when", 0, "op")) == "hard_rules[2].when[0].op"
    assert key_path(()) == "<root>"
    assert key_path(("x" * 100,)) == "x" * 40 + "…"


def test_a_policy_typo_deep_in_a_rule_names_its_key_path(tmp_path: Path) -> None:
    document = _policy()
    clause = document["hard_rules"][1]["when"][0]
    clause["fature"] = clause.pop("feature")
    message = _policy_error(tmp_path, document)
    # the typo, not the key it leaves missing, is reported
    assert message.endswith(
        ": hard_rules[1].when[0].fature: unknown field (allowed: feature, op, value)"
    )


def test_a_mapping_typo_in_a_section_names_the_section(tmp_path: Path) -> None:
    document = _mapping()
    document["timestamp"]["timzone"] = document["timestamp"].pop("timezone")
    assert (
        "unknown key(s) ['timzone'] in 'timestamp'; allowed: ['column', 'format', "
        "'timezone']" in _mapping_error(document)
    )


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["bands"][1].update(outcome=SECRET), "bands[1].outcome"),
        (lambda d: d["bands"][1].update(max=SECRET), "bands[1].max"),
        (lambda d: d["hard_rules"][0]["when"][0].update(op=SECRET), "hard_rules[0].when[0].op"),
        (
            lambda d: d["hard_rules"][0]["when"][0].update(value=SECRET),
            "hard_rules[0].when[0].value",
        ),
        (lambda d: d["hard_rules"][0].update(name=[SECRET]), "hard_rules[0].name"),
        (lambda d: d.update(version=SECRET), "version"),
    ],
)
def test_policy_errors_name_keys_never_values(tmp_path: Path, change, path: str) -> None:
    document = _policy()
    change(document)
    message = _policy_error(tmp_path, document)
    assert f": {path}: " in message and SECRET not in message


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["timestamp"].update(timezone=SECRET),
        lambda d: d["timestamp"].update(format=7),
        lambda d: d["event_types"].update(page_view=SECRET),
        lambda d: d["columns"].update(visitor=SECRET),
        lambda d: d.update(event_id=[SECRET]),
    ],
)
def test_mapping_errors_name_keys_never_values(change) -> None:
    document = _mapping()
    change(document)
    message = _mapping_error(document)
    assert SECRET not in message and message.startswith("invalid source mapping m.yaml: ")


def test_policy_numbers_are_strict_and_finite(tmp_path: Path) -> None:
    document = _policy()
    document["hard_rules"][0]["when"][0]["value"] = "60"  # YAML text, not a number
    assert "hard_rules[0].when[0].value: must be a number, got str" in _policy_error(
        tmp_path, document
    )
    document["hard_rules"][0]["when"][0]["value"] = float("nan")
    assert "hard_rules[0].when[0].value: must be a finite number" in _policy_error(
        tmp_path, document
    )


def test_sections_left_empty_read_as_none_configured(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({**_policy(), "hard_rules": None}))
    assert load_policy(policy_file).hard_rules == ()
    mapping = parse_mapping({**_mapping(), "event_types": None, "defaults": None})
    assert mapping.event_types == {} and mapping.defaults == {}


# -- the training spec -----------------------------------------------------------------------------
def _training_set(tmp_path: Path) -> TrainingSetInfo:
    return TrainingSetInfo(
        directory=str(tmp_path / "set"),
        days={},
        rows={},
        labelled_rows={},
        abnormal_rows={},
        feature_names=list(FEATURE_COLUMNS),
        categories={"channel": ["Direct"]},
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"trainer": {"batchsize": 64}},
            "spec field 'trainer': unknown trainer setting(s) "
            "['batchsize']; known: ['accelerator', 'batch_size', ",
        ),
        (
            {"trainer": {"precision": "fp8"}},
            "spec field 'trainer': trainer setting 'precision' must be one of ['32-true', ",
        ),
        (
            {"mlflow": {"tracking_uri": "sqlite:///m.db", "run_id": "r", "experiment": "x"}},
            "unknown spec field(s) 'mlflow' ['experiment']; known: ['artifact_location', ",
        ),
        ({"label_colum": "label"}, "unknown spec field(s) ['label_colum']; known: ["),
    ],
)
def test_a_training_spec_typo_names_its_key_path(change: dict, message: str) -> None:
    spec = {"kind": "sequence", "train_path": "t.parquet", "output_dir": "model", **change}
    with pytest.raises(SpecError) as error:
        TrainingSpec.from_dict(spec)
    assert str(error.value).startswith(message)


def test_launchpad_defaults_are_the_trainer_settings() -> None:
    """The anomaly_model Launchpad form restates no trainer default: it takes TrainerSettings'."""
    launchpad, settings = AnomalyModelConfig(), TrainerSettings()
    shared = set(AnomalyModelConfig.model_fields) & set(TrainerSettings.model_fields)
    assert shared >= {
        "accelerator",
        "devices",
        "precision",
        "max_epochs",
        "batch_size",
        "learning_rate",
        "patience",
        "seed",
    }
    for name in shared:
        assert getattr(launchpad, name) == getattr(settings, name), name
        assert (
            AnomalyModelConfig.model_fields[name].description
            == TrainerSettings.model_fields[name].description
        ), name
    assert launchpad.batch_size == 512 and launchpad.seed == 7  # one value, not 512 vs 1024
    assert launchpad.kinds == list(KINDS)


def test_the_asset_spec_travels_as_model_dump_json(tmp_path: Path) -> None:
    config = AnomalyModelConfig(kinds=["autoencoder"], devices=2, batch_size=64)
    spec = training_spec(config, "autoencoder", _training_set(tmp_path), tmp_path / "ae")
    assert spec.trainer.strategy == "ddp" and spec.trainer.batch_size == 64
    assert spec.trainer.seed == TrainerSettings().seed
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json(indent=2))
    assert TrainingSpec.from_file(path) == spec


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"precision": "fp8"}, "trainer setting 'precision' must be one of"),
        ({"batch_size": 0}, "trainer setting 'batch_size' must be greater than or equal to 1"),
        ({"kinds": ["autoencodr"]}, "spec field 'kind' must be one of ['autoencoder', 'sequence']"),
        ({"model_params": {"autoencoder": {"trainer": {}}}}, "must not contain 'trainer'"),
    ],
)
def test_a_bad_launchpad_value_fails_while_the_spec_is_built(
    tmp_path: Path, config: dict, message: str
) -> None:
    import dagster as dg

    model_config = AnomalyModelConfig(**config)
    kind = model_config.kinds[0]
    with pytest.raises(dg.Failure) as failure:
        training_spec(model_config, kind, _training_set(tmp_path), tmp_path / kind)
    assert message in str(failure.value.description)
    assert not (tmp_path / kind).exists()
