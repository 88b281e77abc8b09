"""The benchmark suite's code paths at tiny sizes: rows, ratios, report, plot.

Nothing here asserts a timing: the numbers of a quick run mean nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import (
    QUICK,
    Report,
    Row,
    Section,
    cost_scaling,
    oracle_vs_fd,
    reference_vs_torch,
    render_report,
    run_all,
)

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def report() -> Report:
    return run_all(QUICK)


def _section(report: Report, key: str) -> Section:
    return next(section for section in report.sections if section.key == key)


def _keys(section: Section) -> set[tuple[str, str, str]]:
    return {(row.case, row.subject, row.peer) for row in section.rows}


def test_quick_run_has_every_section_in_order(report: Report) -> None:
    assert [s.key for s in report.sections] == [
        "oracle-vs-fd",
        "suite-throughput",
        "reference-vs-torch",
        "cost-scaling",
        "parallel-runs",
    ]


def test_oracle_section_compares_each_verifier_with_both_gradcheck_modes(
    report: Report,
) -> None:
    case = "8-8-8-4 tanh, B=2"
    slow, fast = oracle_vs_fd.SLOW, oracle_vs_fd.FAST
    ours = [oracle_vs_fd.ARB_PATH, oracle_vs_fd.GMPY2_PATH, oracle_vs_fd.MPMATH_PATH]
    expected = {(case, slow, ""), (case, fast, "")} | {
        (case, subject, peer) for subject in ours for peer in (slow, fast)
    }

    assert _keys(_section(report, "oracle-vs-fd")) == expected


def test_oracle_section_gives_targets_to_the_default_oracle_only(
    report: Report,
) -> None:
    rows = _section(report, "oracle-vs-fd").rows

    targeted = {row.subject for row in rows if row.target is not None}

    assert targeted == {oracle_vs_fd.SUITE_PATH}
    assert oracle_vs_fd.SUITE_PATH == oracle_vs_fd.ARB_PATH


def test_throughput_section_has_one_row_per_backend(report: Report) -> None:
    rows = _section(report, "suite-throughput").rows

    assert [row.subject for row in rows] == ["reference", "jacobian-product"]
    assert [row.peer for row in rows] == ["", "reference"]
    assert all(int(row.extra["examples"]) == 4 for row in rows)


def test_torch_section_has_each_case_in_both_thread_settings(report: Report) -> None:
    names = [
        "32-16-16-4, B=8, float64",
        "32-16-16-4, B=8, float32",
        "5 x 8, B=8, float64",
        "5 x 8, B=8, float32",
    ]
    subjects = [
        reference_vs_torch.REFERENCE,
        reference_vs_torch.TORCH,
        reference_vs_torch.FORWARD,
        reference_vs_torch.GRADIENT_FORWARD,
        reference_vs_torch.PEAK_FRACTION,
    ]
    keys = {
        (row.case, row.subject) for row in _section(report, "reference-vs-torch").rows
    }

    for setting in ("default threads", "1 thread"):
        for name in names:
            assert {(f"{name}, {setting}", s) for s in subjects} <= keys
        for dtype in ("float64", "float32"):
            for library in ("numpy", "torch"):
                assert (
                    f"matmul 64x64, {dtype}, {setting}",
                    f"{library} matmul rate",
                ) in keys


def test_cost_section_has_both_backends_at_every_size(report: Report) -> None:
    cases = [
        f"depth sweep: depth {d}, width {QUICK.cost_depth_width}"
        for d in QUICK.cost_depths
    ] + [
        f"width sweep: depth {QUICK.cost_width_depth}, width {w}"
        for w in (*QUICK.cost_widths, QUICK.cost_refused_width)
    ]
    expected = {
        (case, subject, peer)
        for case in cases
        for subject, peer in (
            (cost_scaling.BACKPROP, ""),
            (cost_scaling.PRODUCT, cost_scaling.BACKPROP),
        )
    }

    assert _keys(_section(report, "cost-scaling")) == expected


def test_cost_section_records_the_refusal_past_the_size_limit(report: Report) -> None:
    refused = [
        row for row in _section(report, "cost-scaling").rows if row.value is None
    ]

    assert [(row.case, row.subject) for row in refused] == [
        (
            (
                f"width sweep: depth {QUICK.cost_width_depth}, width "
                f"{QUICK.cost_refused_width}"
            ),
            cost_scaling.PRODUCT,
        )
    ]
    assert refused[0].note.startswith("refused: BackendLimitError")


def test_parallel_section_compares_two_processes_with_one(report: Report) -> None:
    rows = _section(report, "parallel-runs").rows

    assert [(row.subject, row.peer) for row in rows] == [
        ("1 process", ""),
        ("-j 2 (2 worker processes)", "1 process"),
    ]
    assert rows[1].target is not None and rows[1].target.value == 1 / 1.8


def test_every_value_and_ratio_is_a_positive_finite_number(report: Report) -> None:
    measured: list[Row] = [
        row
        for section in report.sections
        for row in section.rows
        if row.value is not None
    ]

    for row in measured:
        assert row.value is not None
        assert all(math.isfinite(v) and v > 0 for v in row.value.values), row.key
        if row.peer:
            assert row.ratio is not None, row.key
            assert all(math.isfinite(r) and r > 0 for r in row.ratio.values), row.key


def test_markdown_report_has_a_table_row_per_row_and_the_machine(
    report: Report,
) -> None:
    text = render_report(report)
    table_lines = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith(("| case ", "| --- "))
    ]

    assert len(table_lines) == sum(len(s.rows) for s in report.sections)
    assert "CPU:" in text and "numpy" in text and "torch" in text
    assert "Load average" in text


def test_cost_plot_is_written_as_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    points = (
        cost_scaling.measure_size("depth", 1, 2, repeats=1)
        + cost_scaling.measure_size("depth", 2, 2, repeats=1)
        + cost_scaling.measure_size("width", 1, 4, repeats=1)
    )
    path = tmp_path / "cost.png"

    cost_scaling.plot(points, path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
