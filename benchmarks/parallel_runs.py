"""Benchmark 5: the suite in two processes against one.

The suite has no option to run in parallel yet, so two processes are
started by hand: each runs ``python -m conformance --only ...`` on one half
of the result ids, the halves balanced by the seconds each result took in
a sequential run. The parallel wall time runs until both have exited.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from benchmarks._conformance import (
    balanced_halves,
    only_arguments,
    run_concurrently,
    run_suite_process,
)
from benchmarks._table import Row, Section
from benchmarks._timing import paired_ratios, sample_of

SEQUENTIAL = "1 process (sequential)"
PARALLEL = "2 processes (halves of the result ids)"


def run(*, repeats: int, base_arguments: Sequence[str] = ()) -> Section:
    """Alternate sequential and two-process runs ``repeats`` times."""
    started = time.perf_counter()
    first = run_suite_process(base_arguments)
    halves = balanced_halves(first.seconds_per_result)
    if not halves[0] or not halves[1]:
        return Section(
            "parallel-runs",
            "Parallel runs",
            "Not measured.",
            (
                Row(
                    "default run",
                    SEQUENTIAL,
                    None,
                    note="the sequential run reported fewer than two results",
                ),
            ),
            seconds=time.perf_counter() - started,
        )

    sequential, parallel, codes = [], [], set()
    for round_number in range(repeats):
        # The first sequential run, which sized the halves, is round 1's.
        one = first if round_number == 0 else run_suite_process(base_arguments)
        two = run_concurrently(
            [[*base_arguments, *only_arguments(half)] for half in halves]
        )
        sequential.append(one.seconds)
        parallel.append(two[0].seconds)
        codes |= {one.exit_code} | {run.exit_code for run in two}
        covered = set(two[0].seconds_per_result) | set(two[1].seconds_per_result)
        if covered != set(one.seconds_per_result):
            codes.add(-1)

    one_sample, two_sample = sample_of(sequential), sample_of(parallel)
    ratio = paired_ratios(two_sample, one_sample)
    speed_up = sample_of([1 / r for r in ratio.values])
    case = (
        "python -m conformance " + " ".join(base_arguments)
        if base_arguments
        else "default run (reference backend)"
    )
    split = [sum(first.seconds_per_result[r] for r in half) for half in halves]
    notes = [
        (
            "Method: the suite has no -j option, so each round runs one sequential "
            "`python -m conformance` and then two concurrent `python -m conformance "
            "--only ...` processes, one per half of the result ids; wall time until "
            "both exit. Halves balanced by per-result seconds of the first round's "
            f"sequential run ({split[0]:.1f} s and {split[1]:.1f} s of checks): "
            f"{', '.join(halves[0])} | {', '.join(halves[1])}."
        ),
        (
            f"Speed-up (sequential / parallel): median {speed_up.median:.2f}, range "
            f"{speed_up.minimum:.2f} – {speed_up.maximum:.2f}; the ideal on 2 cores "
            "is 2 minus the interpreter start-up and imports that each process repeats."
        ),
    ]
    if codes != {0}:
        notes.append(
            f"Exit statuses seen: {sorted(codes)} (-1: the halves did not "
            "cover the same results as the sequential run)."
        )
    rows = (
        Row(case, SEQUENTIAL, one_sample),
        Row(
            case,
            PARALLEL,
            two_sample,
            peer=SEQUENTIAL,
            ratio=ratio,
            extra={"speed-up (median)": f"{speed_up.median:.2f}"},
        ),
    )
    return Section(
        "parallel-runs",
        "Parallel runs",
        "Speed-up of the suite in 2 processes over 1 on this 2-core machine.",
        rows,
        extra_columns=("speed-up (median)",),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )
