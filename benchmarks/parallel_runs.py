"""Benchmark 5: the suite with ``-j 2`` against one process.

Each round runs ``python -m conformance ARGS`` and then
``python -m conformance ARGS -j 2`` (two spawned worker processes that take
checks from a shared queue), each in a fresh interpreter, and times both to
exit. The ratio of the two wall times, round by round, is the speed-up.

Two sizes of run are measured: the default run, whose few seconds of checks
are comparable with the start-up of a worker interpreter, and a run with
five times the examples, where the start-up no longer matters.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from benchmarks._conformance import run_suite_process
from benchmarks._table import Row, Section, Target
from benchmarks._timing import paired_ratios, sample_of

SEQUENTIAL = "1 process"
PARALLEL = "-j 2 (2 worker processes)"
SPEED_UP = 1.8
TARGET = Target("<=", 1 / SPEED_UP)
"""Parallel time at most 1/1.8 of the sequential: a speed-up of at least 1.8."""


def run(*, repeats: int, cases: Sequence[Sequence[str]]) -> Section:
    """Alternate sequential and ``-j 2`` runs ``repeats`` times per case."""
    started = time.perf_counter()
    rows: list[Row] = []
    notes = [
        "Method: each round runs the command once as it is and once with `-j 2`, "
        "each in a fresh interpreter, timed from start to exit; the speed-up is "
        "the sequential time over the parallel one, round by round. The workers "
        "are spawned, so each imports the package and the backend again; the "
        f"target, a speed-up of at least {SPEED_UP}, is the ratio row's "
        f"`ratio <= {1 / SPEED_UP:.3g}`.",
    ]
    for arguments in cases:
        case = "python -m conformance " + " ".join(arguments) if arguments else \
            "python -m conformance (default run, reference backend)"
        sequential, parallel, codes = [], [], set()
        for _ in range(repeats):
            one = run_suite_process(arguments)
            two = run_suite_process([*arguments, "-j", "2"])
            sequential.append(one.seconds)
            parallel.append(two.seconds)
            codes |= {one.exit_code, two.exit_code}
            if set(one.seconds_per_result) != set(two.seconds_per_result):
                codes.add(-1)
        one_sample, two_sample = sample_of(sequential), sample_of(parallel)
        ratio = paired_ratios(two_sample, one_sample)
        speed_up = sample_of([1 / r for r in ratio.values])
        rows += [
            Row(case, SEQUENTIAL, one_sample),
            Row(case, PARALLEL, two_sample, peer=SEQUENTIAL, ratio=ratio,
                target=TARGET,
                extra={"speed-up (median)": f"{speed_up.median:.2f}"}),
        ]
        notes.append(
            f"{case}: speed-up median {speed_up.median:.2f}, range "
            f"{speed_up.minimum:.2f} – {speed_up.maximum:.2f}.")
        if codes != {0}:
            notes.append(
                f"{case}: exit statuses seen {sorted(codes)} (-1: the two runs "
                "did not report the same results).")
    return Section(
        "parallel-runs",
        "Parallel runs",
        "Speed-up of the suite with `-j 2` over one process on this 2-core machine.",
        tuple(rows),
        extra_columns=("speed-up (median)",),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )
