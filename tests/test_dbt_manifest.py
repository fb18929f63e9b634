"""dbt's manifest read into the models, tables and tests the Dagster assets are built from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dbt_fixtures import DBT_PROJECT_DIR, FEATURE_MODELS

from anomaly_pipeline.dbt_manifest import DbtManifest, manifest_is_stale

PROJECT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def test_the_project_s_models_read_their_parents_and_tests_sit_on_what_they_test() -> None:
    manifest = DbtManifest.read(PROJECT_MANIFEST)
    models = {m.name: m for m in manifest.models}
    assert set(models) == set(FEATURE_MODELS)
    assert models["stg_events"].parents == ("raw_events",)
    assert set(models["user_day_features"].parents) == {
        "stg_events",
        "int_sessions",
        "int_user_day_access",
        "int_user_day_milestones",
    }
    assert models["user_day_features"].relation == "features.user_day_features"
    assert "user_key" in {c.name for c in models["user_day_features"].columns}
    tests = {t.name: t for t in manifest.tests}
    # A source's test sits on the table's name, the key of the ingest asset that writes it.
    assert tests["source_not_null_raw_raw_events_user_id"].attached_to == "raw_events"
    assert tests["not_null_stg_events_event_time"].attached_to == "stg_events"
    assert all(t.blocking and not t.other_parents for t in manifest.tests)
    assert {t.attached_to for t in manifest.tests} <= set(models) | {"raw_events", "event_labels"}


def _node(uid: str, resource_type: str, parents: list[str], **extra: Any) -> dict[str, Any]:
    name = uid.split(".")[2]
    return {
        "unique_id": uid,
        "name": name,
        "resource_type": resource_type,
        "fqn": ["p", name],
        "schema": "s",
        "alias": name,
        "config": {"materialized": "table", **extra.pop("config", {})},
        "depends_on": {"nodes": parents},
        **extra,
    }


def _write(tmp_path: Path, *nodes: dict[str, Any]) -> Path:
    manifest = {
        "nodes": {node["unique_id"]: node for node in nodes},
        "sources": {"source.p.raw.events": {"name": "events"}},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_ephemeral_models_are_not_assets_and_tests_keep_severity_and_other_parents(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        _node("model.p.a", "model", ["source.p.raw.events"]),
        _node("model.p.eph", "model", ["model.p.a"], config={"materialized": "ephemeral"}),
        _node(
            "test.p.relationships_a_b",
            "test",
            ["model.p.a", "source.p.raw.events"],
            attached_node="model.p.a",
            config={"severity": "warn"},
        ),
    )
    manifest = DbtManifest.read(path)
    assert [m.name for m in manifest.models] == ["a"]
    (test,) = manifest.tests
    assert (test.attached_to, test.other_parents, test.blocking) == ("a", ("events",), False)


def test_a_test_attached_to_nothing_it_reads_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        _node("model.p.a", "model", []),
        _node("model.p.b", "model", []),
        _node("test.p.a_matches_b", "test", ["model.p.a", "model.p.b"], attached_node=None),
    )
    with pytest.raises(ValueError, match="a_matches_b reads"):
        DbtManifest.read(path)


def test_the_manifest_is_stale_once_a_project_file_is_newer(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "target").mkdir()
    model = project / "models" / "a.sql"
    model.write_text("select 1")
    manifest = project / "target" / "manifest.json"
    assert manifest_is_stale(project, manifest)  # never parsed
    manifest.write_text("{}")
    os.utime(model, (1_000, 1_000))
    assert not manifest_is_stale(project, manifest)
    (project / "target" / "run.sql").write_text("select 2")  # dbt's own output: not a change
    assert not manifest_is_stale(project, manifest)
    os.utime(model, None)
    os.utime(manifest, (1_000, 1_000))
    assert manifest_is_stale(project, manifest)
