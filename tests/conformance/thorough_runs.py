"""The thorough profile on the backends that must never be blamed.

Run from a checkout with the project and PyTorch installed::

    python tests/conformance/thorough_runs.py [--jobs N] [BACKEND ...]

For each backend (default: ``reference``, ``mpmath`` and ``torch``) it runs
``python -m conformance --profile thorough`` (2,000 examples per check) with
a seed drawn afresh, and keeps the JSON report in ``docs/thorough/`` under
the backend's name. ``detection_figures.py`` reads those reports into the
false-alarm figures of ``docs/detection.md``. Each run takes 5 to 15
minutes on 2 cores; the command prints the exit status and the verdict line
of each, and exits 1 if any backend was found non-conformant.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REPORTS = REPO_ROOT / "docs" / "thorough"
BACKENDS = ("reference", "mpmath", "torch")


def run(backend: str, seed: int, jobs: int) -> int:
    """One thorough run; returns its exit status."""
    report = REPORTS / f"{backend}.json"
    command = [sys.executable, "-m", "conformance", "--backend", backend,
               "--profile", "thorough", "--seed", str(seed), "-j", str(jobs),
               "--report", str(report), "-q"]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                              check=False)
    verdict = (finished.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"{backend} seed {seed}: exit {finished.returncode} in "
          f"{time.perf_counter() - started:.0f} s: {verdict}", flush=True)
    if finished.returncode not in (0, 1):
        print(finished.stderr[-2000:], file=sys.stderr)
    return finished.returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Run each backend's thorough profile with a fresh random seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="*", default=list(BACKENDS),
                        help="backends to run (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes per run (default: %(default)s)")
    options = parser.parse_args(argv)
    REPORTS.mkdir(parents=True, exist_ok=True)
    picker = random.Random()
    codes = [run(name, picker.randrange(2**32), options.jobs)
             for name in options.backends]
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
