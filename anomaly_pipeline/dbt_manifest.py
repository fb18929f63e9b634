"""The dbt project's manifest as the pipeline reads it: models, the tables they read, their tests.

The Dagster assets and checks of the dbt step are built from this (anomaly_pipeline/defs/features/
dbt.py). Reading the manifest's JSON directly, rather than through dagster-dbt, keeps dbt-core's
artifact classes (≈1.5 s of imports) out of every process that loads the code location.

Nodes are named as the pipeline names its assets: a model by its name, a source by its table's
name (``raw_events``), which is also the key of the ingest asset that writes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Files dbt parses into the manifest (models, macros, tests, properties, the project file).
PROJECT_FILE_SUFFIXES = (".sql", ".yml", ".yaml")
#: dbt's own output folders inside the project, never parsed.
OUTPUT_FOLDERS = ("target", "logs")


def manifest_is_stale(project_dir: Path, manifest_path: Path) -> bool:
    """Whether a project file changed after ``manifest_path`` was written (or it is missing):
    the same rule as the Makefile's manifest target, so a re-parse happens only when needed."""
    if not manifest_path.exists():
        return True
    written = manifest_path.stat().st_mtime
    return any(
        path.stat().st_mtime > written
        for path in project_dir.rglob("*")
        if path.suffix in PROJECT_FILE_SUFFIXES
        and path.relative_to(project_dir).parts[0] not in OUTPUT_FOLDERS
    )


@dataclass(frozen=True)
class DbtColumn:
    """A documented column of a model (type as documented; dbt does not infer one)."""

    name: str
    data_type: str | None
    description: str


@dataclass(frozen=True)
class DbtNode:
    """What names a node: to Dagster (``name``), in dbt's results (``unique_id``), and to dbt's
    selection (``fqn``, the exact selector ``fqn:a.b.c``)."""

    name: str
    unique_id: str
    fqn: tuple[str, ...]


@dataclass(frozen=True)
class DbtModel(DbtNode):
    """A model: its relation, documentation and the models or source tables it reads."""

    relation: str
    materialized: str
    description: str
    raw_code: str
    columns: tuple[DbtColumn, ...]
    parents: tuple[str, ...]

    @property
    def code_version(self) -> str:
        """Changes exactly when the model's SQL does (Dagster flags the asset as changed)."""
        return hashlib.sha1(self.raw_code.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DbtTest(DbtNode):
    """A data test, attached to the model or source table it tests."""

    attached_to: str
    #: Other nodes the test reads (e.g. a relationships test's referenced model).
    other_parents: tuple[str, ...]
    #: dbt's ``severity: error`` (the default): a failure fails the build and stops what depends
    #: on the tested node; ``warn`` only reports.
    blocking: bool


@dataclass(frozen=True)
class DbtManifest:
    """The models and data tests of a project (unit tests are not nodes of the graph)."""

    models: tuple[DbtModel, ...]
    tests: tuple[DbtTest, ...]

    @classmethod
    def read(cls, path: Path) -> DbtManifest:
        """Parse ``manifest.json`` (written by ``dbt parse``; ``make install`` builds it)."""
        manifest = json.loads(path.read_text(encoding="utf-8"))
        names = {uid: node["name"] for uid, node in manifest["nodes"].items()}
        names |= {uid: source["name"] for uid, source in manifest["sources"].items()}
        nodes = manifest["nodes"].values()
        models = tuple(
            _model(node, names)
            for node in nodes
            if node["resource_type"] == "model" and node["config"]["materialized"] != "ephemeral"
        )
        tests = tuple(_test(node, names) for node in nodes if node["resource_type"] == "test")
        return cls(models=models, tests=tests)


def _model(node: Mapping[str, Any], names: Mapping[str, str]) -> DbtModel:
    return DbtModel(
        name=node["name"],
        unique_id=node["unique_id"],
        fqn=tuple(node["fqn"]),
        relation=f"{node['schema']}.{node['alias']}",
        materialized=node["config"]["materialized"],
        description=node.get("description") or "",
        raw_code=node.get("raw_code") or "",
        columns=tuple(
            DbtColumn(
                name=name,
                data_type=column.get("data_type"),
                description=column.get("description") or "",
            )
            for name, column in node.get("columns", {}).items()
        ),
        parents=tuple(names[uid] for uid in node["depends_on"]["nodes"]),
    )


def _test(node: Mapping[str, Any], names: Mapping[str, str]) -> DbtTest:
    parents = [names[uid] for uid in node["depends_on"]["nodes"]]
    # A generic test names the node it is attached to (none for a source's tests); a singular
    # test on one node is attached to that node.
    attached = node.get("attached_node")
    if attached is not None:
        attached_to = names[attached]
    elif len(parents) == 1:
        attached_to = parents[0]
    else:
        raise ValueError(
            f"dbt test {node['unique_id']} reads {parents} and is attached to none of them: "
            "a singular test must read one model or source"
        )
    return DbtTest(
        name=node["name"],
        unique_id=node["unique_id"],
        fqn=tuple(node["fqn"]),
        attached_to=attached_to,
        other_parents=tuple(sorted(set(parents) - {attached_to})),
        blocking=(node["config"].get("severity") or "error").lower() == "error",
    )
