"""The ``anomaly-pipeline`` console script (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the sub-command; bad input exits 2 with one clear line."""
    from anomaly_pipeline.onboarding import cli as onboarding

    parser = argparse.ArgumentParser(
        prog="anomaly-pipeline", description="The anomaly pipeline's command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    onboarding.add_arguments(
        commands.add_parser(
            "onboard",
            help=onboarding.__doc__.splitlines()[0],
            description=onboarding.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    feedback_template = commands.add_parser(
        "feedback-template",
        help="write a day's alerts as a feedback file to fill in (verdict per alert)",
        description="Write DAY's alerts (scoring.anomaly_alerts of $ANOMALY_PIPELINE_HOME) as a "
        "CSV with an empty verdict column. Fill in confirmed or false_positive per row, then "
        "move the file into landing/labels/ and materialize event_labels for DAY.",
    )
    feedback_template.add_argument("day", type=date.fromisoformat, help="YYYY-MM-DD")
    feedback_template.add_argument(
        "--out", type=Path, help="where to write it (default: ./feedback_DAY.csv; never replaced)"
    )
    args = parser.parse_args(argv)
    try:
        lines = (
            _feedback_template(args.day, args.out)
            if args.command == "feedback-template"
            else onboarding.onboard(args)
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:  # bad input
        print(f"anomaly-pipeline {args.command}: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print("\n".join(["", *lines]))


def _feedback_template(day: date, out: Path | None) -> list[str]:
    from anomaly_pipeline.feedback import write_template
    from anomaly_pipeline.paths import data_home

    home = data_home()
    target = out or Path(f"feedback_{day.isoformat()}.csv")
    n = write_template(home.warehouse, day, target)
    return [
        f"{n} alert(s) of {day} written to {target}.",
        "Fill in verdict (confirmed | false_positive) per row, optionally anomaly_type, analyst "
        f"and decided_at; then move it to {home.landing_labels}/ and materialize event_labels "
        f"for {day} (rows without a verdict are quarantined).",
    ]


if __name__ == "__main__":
    main()
