"""The ``anomaly-pipeline`` console script (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

import argparse
import sys


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
    args = parser.parse_args(argv)
    try:
        lines = onboarding.onboard(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: format, times, mapping, file
        print(f"anomaly-pipeline {args.command}: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print("\n".join(["", *lines]))


if __name__ == "__main__":
    main()
