"""Running every benchmark with one configuration and writing the report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks import (
    cost_scaling,
    oracle_vs_fd,
    parallel_runs,
    reference_vs_torch,
    suite_throughput,
)
from benchmarks._machine import describe_machine, load_average
from benchmarks._table import Report, Section, render_report, target_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    """Sizes and repeat counts of one benchmark run.

    Attributes
    ----------
    quick
        Tiny sizes for a smoke test; the numbers mean nothing.
    repeats
        Rounds of the cheap in-process measurements.
    suite_repeats
        Runs of each subprocess measurement of the suite.
    suite_arguments
        Extra ``python -m conformance`` arguments (none for the default run).
    suite_backends
        Backends whose suite runs are timed; the first is the others' peer.
    oracle_batches
        Batch sizes of the oracle benchmark.
    torch_repeats, peak_size
        Rounds of the reference-vs-torch benchmark; side of the peak matmul.
    cost_depths, cost_depth_width, cost_widths, cost_width_depth, cost_refused_width
        The two sweeps of the cost benchmark and the width shown refused.
    """

    quick: bool
    repeats: int
    suite_repeats: int
    suite_arguments: tuple[str, ...]
    suite_backends: tuple[str, ...]
    oracle_batches: tuple[int, ...]
    torch_repeats: int
    peak_size: int
    cost_depths: tuple[int, ...]
    cost_depth_width: int
    cost_widths: tuple[int, ...]
    cost_width_depth: int
    cost_refused_width: int
    parallel_cases: tuple[tuple[str, ...], ...]


FULL = Config(
    quick=False,
    repeats=31,
    suite_repeats=3,
    suite_arguments=(),
    suite_backends=("reference", "torch"),
    oracle_batches=(1, 8),
    torch_repeats=31,
    peak_size=1024,
    cost_depths=(2, 4, 8, 16, 32),
    cost_depth_width=16,
    cost_widths=(4, 8, 16, 32, 64, 128),
    cost_width_depth=4,
    cost_refused_width=512,
    parallel_cases=((), ("--examples", "200")),
)
"""What ``python -m benchmarks`` runs: a few minutes on 2 cores."""

QUICK = replace(
    FULL,
    quick=True,
    repeats=3,
    suite_repeats=1,
    suite_arguments=(
        "--examples",
        "2",
        "--only",
        "loss-gradient.squared-error",
        "--only",
        "layer-jacobian.affine",
    ),
    suite_backends=("reference", "jacobian-product"),
    oracle_batches=(2,),
    torch_repeats=3,
    peak_size=64,
    cost_depths=(1, 2),
    cost_depth_width=4,
    cost_widths=(2, 4),
    cost_width_depth=2,
    cost_refused_width=512,
    parallel_cases=(),
)
"""Tiny sizes: every code path in seconds, for ``--quick`` and the smoke test."""

SECTION_KEYS = (
    "oracle-vs-fd",
    "suite-throughput",
    "reference-vs-torch",
    "cost-scaling",
    "parallel-runs",
)
"""Every section, in report order."""


def _sections(
    config: Config, plot_path: Path | None
) -> dict[str, Callable[[], Section]]:
    return {
        "oracle-vs-fd": lambda: oracle_vs_fd.run(
            batch_sizes=config.oracle_batches, repeats=config.repeats
        ),
        "suite-throughput": lambda: suite_throughput.run(
            repeats=config.suite_repeats,
            base_arguments=config.suite_arguments,
            backends=config.suite_backends,
        ),
        "reference-vs-torch": lambda: reference_vs_torch.run(
            quick=config.quick, repeats=config.torch_repeats, peak_size=config.peak_size
        ),
        "cost-scaling": lambda: cost_scaling.run(
            depths=config.cost_depths,
            depth_width=config.cost_depth_width,
            widths=config.cost_widths,
            width_depth=config.cost_width_depth,
            refused_width=config.cost_refused_width,
            repeats=config.repeats,
            plot_path=plot_path,
        ),
        "parallel-runs": lambda: parallel_runs.run(
            repeats=config.suite_repeats,
            cases=config.parallel_cases or (config.suite_arguments,),
        ),
    }


def run_all(
    config: Config,
    *,
    plot_path: Path | None = None,
    only: tuple[str, ...] = (),
    command: str = "python -m benchmarks",
) -> Report:
    """Run the chosen sections (all by default) and collect the report."""
    started = time.perf_counter()
    machine = describe_machine()
    sections = []
    for key, section in _sections(config, plot_path).items():
        if only and key not in only:
            continue
        logger.info("benchmark %s started", key)
        sections.append(replace(section(), load_after=load_average()))
        logger.info("benchmark %s finished in %.1f s", key, sections[-1].seconds)
    machine = replace(machine, load_after=load_average())
    return Report(machine, tuple(sections), command, time.perf_counter() - started)


def write_report(report: Report, path: Path) -> str:
    """Render the report to Markdown at ``path``; return the text."""
    text = render_report(report, target_summary(report.sections), path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
