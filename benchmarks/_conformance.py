"""Running ``python -m conformance`` as a subprocess and reading its report."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._machine import REPOSITORY

SUITE_TIMEOUT = 600.0
"""Seconds after which a suite run is abandoned; a default run takes seconds."""


@dataclass(frozen=True)
class SuiteRun:
    """One finished run of the suite.

    Attributes
    ----------
    seconds
        Wall time from starting the process to its exit.
    exit_code
        The CLI's exit status (0 conformant, 1 violated, 2 usage).
    seconds_per_result
        From the JSON report: each result id and the seconds it took.
    examples
        Examples run, summed over results.
    """

    seconds: float
    exit_code: int
    seconds_per_result: dict[str, float]
    examples: int
    stderr: str = ""


def command(arguments: Sequence[str], report: Path) -> list[str]:
    """The command line of one suite run writing its JSON report to ``report``."""
    return [sys.executable, "-m", "conformance", *arguments, "--report", str(report)]


def read_report(report: Path) -> tuple[dict[str, float], int]:
    """Seconds per result id and the total examples, from a JSON report."""
    if not report.exists():
        return {}, 0
    data = json.loads(report.read_text())
    results = data.get("results", [])
    return (
        {str(r["id"]): float(r["seconds"]) for r in results},
        sum(int(r["examples"]) for r in results),
    )


def run_suite_process(arguments: Sequence[str]) -> SuiteRun:
    """Run the suite once in a fresh interpreter; measure its wall time."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        started = time.perf_counter()
        finished = subprocess.run(
            command(arguments, report),
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
        per_result, examples = read_report(report)
    return SuiteRun(
        seconds, finished.returncode, per_result, examples, finished.stderr[-2000:]
    )
