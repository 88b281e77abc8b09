"""Rows, sections and the Markdown report they are rendered to."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmarks._machine import Machine
from benchmarks._timing import Sample

Unit = Literal["s", "bytes", "examples/s", "GFLOP/s", "fraction", "ops", "x"]
"""What a row's value measures: seconds per call, peak bytes, throughput,
arithmetic rate, a fraction, an operation count or a plain ratio."""


@dataclass(frozen=True)
class Target:
    """A goal stated by the project, e.g. ``ratio <= 0.05``.

    Attributes
    ----------
    relation
        ``"<="`` (at most) or ``">="`` (at least).
    value
        The bound the median is held to.
    on
        ``"ratio"`` judges the row's ratio to its peer, ``"value"`` its value.
    """

    relation: Literal["<=", ">="]
    value: float
    on: Literal["ratio", "value"] = "ratio"

    def met_by(self, median: float) -> bool:
        """Whether ``median`` meets the target."""
        return median <= self.value if self.relation == "<=" else median >= self.value

    def describe(self, unit: Unit = "x") -> str:
        """``ratio <= 0.05``, or the value's bound in ``unit`` (``>= 75 %``)."""
        if self.on == "ratio":
            return f"ratio {self.relation} {self.value:.3g}"
        return f"{self.relation} {format_value(self.value, unit)}"


@dataclass(frozen=True)
class Row:
    """One measured subject on one case.

    Attributes
    ----------
    case
        What was run (network, batch, backend...).
    subject
        Who or what was measured; peers are other rows' subjects.
    value
        Repeated measurements in ``unit``; ``None`` when nothing could be
        measured (then ``note`` says why).
    peer
        The subject this row is compared with, measured in the same run.
    ratio
        Per-round ``value / peer value``.
    target
        A project goal for this row, if any.
    extra
        Values of the section's extra columns, already formatted.
    note
        Why a row has no value, or anything a reader must know about it.
    """

    case: str
    subject: str
    value: Sample | None
    unit: Unit = "s"
    peer: str = ""
    ratio: Sample | None = None
    target: Target | None = None
    extra: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the target is met by the median (``None`` without target)."""
        if self.target is None:
            return None
        measured = self.ratio if self.target.on == "ratio" else self.value
        if measured is None:
            return False
        return self.target.met_by(measured.median)

    @property
    def key(self) -> tuple[str, str]:
        """``(case, subject)``: what identifies a row within its section."""
        return self.case, self.subject


@dataclass(frozen=True)
class Section:
    """One benchmark's table and notes."""

    key: str
    title: str
    description: str
    rows: tuple[Row, ...]
    extra_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    load_after: tuple[float, float, float] | None = None
    figure: Path | None = None
    """A picture drawn by the benchmark, shown under its table."""


@dataclass(frozen=True)
class Report:
    """Every section and the machine they ran on."""

    machine: Machine
    sections: tuple[Section, ...]
    command: str
    seconds: float


def format_value(value: float, unit: Unit) -> str:
    """A number with three significant digits and a readable unit."""
    if not math.isfinite(value):
        return str(value)
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value * 1e9:.3g} ns"
    if unit == "bytes":
        for scale, name in ((2.0**30, "GiB"), (2.0**20, "MiB"), (2.0**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    if unit == "fraction":
        return f"{value * 100:.3g} %"
    if unit == "ops":
        return f"{value:.3g}"
    if unit == "x":
        return f"{value:.3g}x"
    return f"{value:.3g} {unit}"


def _spread(sample: Sample | None, unit: Unit) -> tuple[str, str]:
    if sample is None:
        return "", ""
    q1, q3 = sample.quartiles
    return (
        f"{format_value(q1, unit)} – {format_value(q3, unit)}",
        f"{format_value(sample.minimum, unit)} – {format_value(sample.maximum, unit)}",
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_section(section: Section, number: int, folder: Path | None = None) -> str:
    """The section's heading, table, figure and notes in Markdown.

    ``folder`` is where the Markdown file goes: figures are linked relative to it.
    """
    header = (
        ["case", "measured", "median", "IQR", "min – max", "n"]
        + list(section.extra_columns)
        + ["peer", "ratio (median)", "ratio IQR", "target", "met"]
    )
    lines = [
        f"## {number}. {section.title}",
        "",
        section.description,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    for row in section.rows:
        iqr, full_range = _spread(row.value, row.unit)
        ratio_iqr, _ = _spread(row.ratio, "x")
        median = (
            format_value(row.value.median, row.unit)
            if row.value is not None
            else row.note or "not measured"
        )
        met = {None: "", True: "yes", False: "**no**"}[row.met]
        cells = (
            [
                row.case,
                row.subject,
                median,
                iqr,
                full_range,
                str(row.value.count) if row.value is not None else "0",
            ]
            + [row.extra.get(c, "") for c in section.extra_columns]
            + [
                row.peer,
                format_value(row.ratio.median, "x") if row.ratio is not None else "",
                ratio_iqr,
                row.target.describe(row.unit) if row.target else "",
                met,
            ]
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if section.figure is not None and section.figure.exists():
        link = Path(os.path.relpath(section.figure, folder or Path.cwd())).as_posix()
        lines += ["", f"![{section.title}]({link})"]
    notes = list(section.notes) + [
        f"{row.case}, {row.subject}: {row.note}"
        for row in section.rows
        if row.note and row.value is not None
    ]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    load = (
        ""
        if section.load_after is None
        else "; load average (1, 5, 15 min) "
        "at its end: " + ", ".join(f"{v:.2f}" for v in section.load_after)
    )
    lines += ["", f"This benchmark took {section.seconds:.0f} s{load}.", ""]
    return "\n".join(lines)


def _machine_lines(machine: Machine) -> list[str]:
    versions = ", ".join(
        f"{name} {version}" for name, version in machine.versions.items()
    )
    variables = ", ".join(
        f"{name}={value!r}" if value else f"{name} unset"
        for name, value in machine.blas_variables.items()
    )
    return [
        f"- Date: {machine.date}",
        (
            f"- CPU: {machine.cpu_model}; {machine.logical_cpus} logical CPUs, "
            f"{machine.physical_cores} physical cores (from /proc/cpuinfo)"
        ),
        f"- {machine.python}; {versions}",
        "- BLAS and thread pools (threadpoolctl): " + "; ".join(machine.blas),
        f"- OpenBLAS variables: {variables}",
        f"- Commit: {machine.commit}",
        (
            f"- Load average (1, 5, 15 min) before: "
            f"{', '.join(f'{v:.2f}' for v in machine.load_before)}; after: "
            f"{', '.join(f'{v:.2f}' for v in machine.load_after)}"
        ),
    ]


def _load_warning(machine: Machine) -> list[str]:
    busiest = max(machine.load_before[0], machine.load_after[0])
    if busiest < machine.logical_cpus:
        return []
    return [
        "",
        (
            f"**The machine was shared**: the 1-minute load average reached "
            f"{busiest:.1f} on {machine.logical_cpus} CPUs during this run, from "
            "other work. Absolute times include waiting for a CPU; ratios measured "
            "round by round are steadier, and single-threaded rows steadier than "
            "multi-threaded ones. Each section ends with the load when it finished."
        ),
    ]


def render_report(
    report: Report, summary: Sequence[str] = (), folder: Path | None = None
) -> str:
    """The whole Markdown document, to be written into ``folder``."""
    lines = (
        [
            "# Benchmarks",
            "",
            (
                f"Generated by `{report.command}` in {report.seconds:.0f} s; do not "
                "edit by hand, run the command again."
            ),
            "",
            (
                "Medians over repeated runs, with the interquartile range (IQR) and "
                "the minimum and maximum. A ratio is this row's value divided by its "
                "peer's, measured round by round in the same run (each round calls "
                "both once), so its IQR shows how steady the comparison was."
            ),
            "",
            "## Machine",
            "",
        ]
        + _machine_lines(report.machine)
        + _load_warning(report.machine)
    )
    if summary:
        lines += [
            "",
            "## Targets",
            "",
            (
                "Every row that carries a target stated by the project, judged on "
                "its median."
            ),
            "",
        ] + list(summary)
    lines.append("")
    for number, section in enumerate(report.sections, start=1):
        lines.append(render_section(section, number, folder))
    return "\n".join(lines).rstrip() + "\n"


def target_summary(sections: Sequence[Section]) -> list[str]:
    """A Markdown table: one line per row with a target, met or not."""
    lines = [
        "| benchmark | case | measured | peer | target | median | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        for row in section.rows:
            if row.target is None:
                continue
            measured = row.ratio if row.target.on == "ratio" else row.value
            shown = (
                "not measured"
                if measured is None
                else format_value(
                    measured.median, "x" if row.target.on == "ratio" else row.unit
                )
            )
            cells = [
                section.title,
                row.case,
                row.subject,
                row.peer,
                row.target.describe(row.unit),
                shown,
                "yes" if row.met else "**no**",
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines if len(lines) > 2 else []
