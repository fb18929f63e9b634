"""The README's shell examples run as written.

Every fenced ``bash`` block of README.md is extracted and run with bash (``-euo pipefail``) from
the repository root against a small demo-like data home: simulated days ending yesterday (as
``make demo`` lays them out), the oldest ingested and a champion trained on them. Blocks of
``make`` entry points only (the demo, the whole test suite, onboarding: long runs that CI and their
own end-to-end tests cover) are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import REPO_ROOT, Pipeline, materialize, pipeline_resources

from anomaly_pipeline.demo import demo_days

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
#: A fenced bash block, indented or not (list items indent theirs); group 2 is its text.
BASH_BLOCK = re.compile(r"^([ \t]*)```bash\n(.*?)^\1```", re.M | re.S)
#: Demo-like days ending yesterday: the README's examples take the newest three, the champion is
#: trained on the three before.
DAYS = demo_days(6)
#: The landing folder also holds today: a run that crosses midnight UTC after this module was
#: imported names one day later in the README's `date -u -d 'N days ago'`.
LANDED = [*DAYS, DAYS[-1] + timedelta(days=1)]
N_USERS = 150
LEAN_TRAINING = {
    "training_set": {"config": {"window_days": 3, "validation_days": 1, "holdout_days": 1}},
    "baseline_models": {"config": {"kinds": ["gaussian"]}},
    "anomaly_model": {"config": {"kinds": []}},
}


def bash_blocks(text: str) -> list[str]:
    """The README's bash blocks, each dedented by its fence's indent."""
    blocks = []
    for match in BASH_BLOCK.finditer(text):
        indent = len(match.group(1))
        blocks.append("".join(line[indent:] + "\n" for line in match.group(2).splitlines()))
    return blocks


def is_make_entry_point(block: str) -> bool:
    """A block of ``make`` targets only (``make demo``, ``make test``, ``make onboard``)."""
    commands = [line for line in block.splitlines() if line.strip()]
    return all(line.lstrip().startswith("make ") for line in commands)


@pytest.fixture(scope="module")
def demo_like_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Six simulated days ending yesterday in landing files; the oldest three ingested and a
    Gaussian champion trained on them (the demo's state before its newest days are run)."""
    import dagster as dg

    from anomaly_pipeline.defs.jobs import INGEST_FEATURES, TRAINING
    from anomaly_pipeline.paths import data_home
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    root = tmp_path_factory.mktemp("readme_home")
    home = data_home(root).ensure()
    simulation = simulate(
        SimulationConfig(
            start_day=LANDED[0], n_days=len(LANDED), n_users=N_USERS, seed=3, anomaly_share=0.05
        )
    )
    write_landing(simulation, home.landing_events, home.landing_labels)
    with dg.DagsterInstance.local_temp(str(home.dagster_home)) as instance:
        pipeline = Pipeline(
            root=root,
            days=DAYS,
            instance=instance,
            resources=pipeline_resources(root),
            simulation=simulation,
        )
        assert materialize(pipeline, INGEST_FEATURES, tags=pipeline.range_tags(DAYS[:3])).success
        assert materialize(pipeline, TRAINING, run_config={"ops": LEAN_TRAINING}).success
        # the instance settings `make install` gives the demo home (pools: one DuckDB writer)
        shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", home.dagster_home / "dagster.yaml")
        yield pipeline


def test_the_readme_has_runnable_blocks() -> None:
    blocks = bash_blocks(README.read_text())
    skipped = [b for b in blocks if is_make_entry_point(b)]
    assert any("make demo" in b and "make test" in b for b in skipped)
    assert len(blocks) > len(skipped)


def test_readme_shell_blocks_run_against_a_demo_like_home(demo_like_home: Pipeline) -> None:
    from anomaly_pipeline import warehouse
    from anomaly_pipeline.scoring import SCORES_TABLE
    from anomaly_pipeline.training_set import FEATURES_TABLE

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["ANOMALY_PIPELINE_HOME"] = str(demo_like_home.root)
    ran_on = {datetime.now(UTC).date()}
    for block in bash_blocks(README.read_text()):
        if is_make_entry_point(block):
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert done.returncode == 0, f"README block failed:\n{block}\n{done.stderr[-4000:]}"

    ran_on.add(datetime.now(UTC).date())
    # what the block's `date -u -d '3 days ago'`… names on the day it ran (either, across midnight)
    scores = warehouse.read_days(demo_like_home.warehouse, SCORES_TABLE, LANDED)
    newest: list[date] = sorted(set(scores["event_day"]))
    assert newest in [demo_days(3, day) for day in ran_on], newest
    features = warehouse.read_days(demo_like_home.warehouse, FEATURES_TABLE, newest)
    assert sorted(set(features["event_day"])) == newest
    assert scores.height == features.height


def test_bash_blocks_are_found_indented_or_not() -> None:
    text = "x\n```bash\necho a\n```\n- item\n  ```bash\n  echo b\n  make x\n  ```\n"
    assert bash_blocks(text) == ["echo a\n", "echo b\nmake x\n"]
    assert not is_make_entry_point("echo b\nmake x\n") and is_make_entry_point("make demo\n")
