"""``make bench-quality``'s code path on one tiny simulation: features through ingest + dbt, every
candidate fitted and scored, per-type PR-AUC, and the machine-readable last line."""

from __future__ import annotations

import re

import pytest
from bench_quality import CANDIDATES, main

pytestmark = pytest.mark.slow


def test_bench_quality_reports_every_candidate_and_the_result_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(
        [
            "--difficulties",
            "0.2",
            "--seeds",
            "1",
            "--target-difficulty",
            "0.2",
            "--days",
            "3",
            "--users",
            "300",
            "--anomaly-share",
            "0.1",
        ]
    )
    out = capsys.readouterr().out
    for name in CANDIDATES:
        assert f"| {name} | " in out
    assert "early stopping triggered in" in out
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(
        r"bench-quality best_unsup_pr=(\S+) best_sup_pr=(\S+) worst_type_pr=(\S+) "
        r"ensemble_pr=(\S+)",
        last,
    )
    assert match, last
    figures = [float(value) for value in match.groups()]
    assert all(0.0 < value <= 1.0 for value in figures)
    assert figures[0] >= figures[3]  # the best unsupervised candidate is at least the ensemble
