"""Benchmark 2: wall time and examples per second of the suite, per backend.

Each run is ``python -m conformance`` in a fresh interpreter (imports
included), as a user runs it; examples are summed over results from the
run's JSON report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from benchmarks._conformance import SuiteRun, run_suite_process
from benchmarks._table import Row, Section, Target
from benchmarks._timing import Sample, paired_ratios, sample_of

BACKENDS = ("reference", "torch")
"""The backends timed; the first is every other's peer."""


WALL_TARGET = Target("<=", 20.0, on="value")
"""A default run of the reference or torch backend within 20 s on 2 cores."""


def run(
    *,
    repeats: int,
    base_arguments: Sequence[str] = (),
    backends: Sequence[str] = BACKENDS,
) -> Section:
    """Run the suite ``repeats`` times per backend, backends alternating."""
    started = time.perf_counter()
    runs: dict[str, list[SuiteRun]] = {backend: [] for backend in backends}
    for _ in range(repeats):
        for backend in backends:
            runs[backend].append(
                run_suite_process([*base_arguments, "--backend", backend])
            )

    rows, notes = [], []
    peer = backends[0]
    walls = {b: sample_of([r.seconds for r in runs[b]]) for b in backends}
    for backend in backends:
        finished = runs[backend]
        examples = max(r.examples for r in finished)
        rate: Sample | None = (
            sample_of([r.examples / r.seconds for r in finished]) if examples else None
        )
        codes = sorted({r.exit_code for r in finished})
        rows.append(
            Row(
                "python -m conformance "
                + " ".join([*base_arguments, "--backend", backend]),
                backend,
                walls[backend],
                peer="" if backend == peer else peer,
                ratio=None
                if backend == peer
                else paired_ratios(walls[backend], walls[peer]),
                target=WALL_TARGET if not base_arguments else None,
                extra={
                    "examples": str(examples),
                    "examples/s (median)": f"{rate.median:.3g}" if rate else "",
                    "exit status": ", ".join(map(str, codes)),
                },
            )
        )
        if codes != [0]:
            notes.append(
                f"{backend}: exit status {codes}; last stderr: "
                f"{finished[-1].stderr.strip()[-300:]!r}"
            )
    notes.append(
        "Wall time of the whole process (interpreter start, imports, "
        "Hypothesis, the oracle, the report); examples/s is the examples "
        "of all results over that wall time. Backends alternate run by run."
    )
    return Section(
        "suite-throughput",
        "Suite throughput",
        "Wall time and examples per second of a default run per backend.",
        tuple(rows),
        extra_columns=("examples", "examples/s (median)", "exit status"),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )
