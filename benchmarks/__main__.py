"""``python -m benchmarks``: run the benchmarks, write the Markdown report and plot."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks._machine import REPOSITORY
from benchmarks._run import FULL, QUICK, SECTION_KEYS, run_all, write_report

DEFAULT_OUTPUT = REPOSITORY / "docs" / "benchmarks.md"
DEFAULT_PLOT = REPOSITORY / "docs" / "_static" / "cost.png"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure backprop-spec against its peers and write "
        "docs/benchmarks.md and docs/_static/cost.png.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, every code path in seconds; writes files "
        "only where --output/--plot say (default: print only)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"Markdown report (default: {DEFAULT_OUTPUT.relative_to(REPOSITORY)})",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="PNG of the cost benchmark "
        f"(default: {DEFAULT_PLOT.relative_to(REPOSITORY)})",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=SECTION_KEYS,
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    plot = args.plot or (None if args.quick else DEFAULT_PLOT)
    command = (
        "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {key}" for key in args.only)
    )
    report = run_all(
        QUICK if args.quick else FULL,
        plot_path=plot,
        only=tuple(args.only),
        command=command,
    )
    if output is not None:
        text = write_report(report, output)
        print(f"wrote {output}" + (f" and {plot}" if plot else ""))
    else:
        from benchmarks._table import render_report, target_summary

        text = render_report(report, target_summary(report.sections))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
