"""``python -m conformance matrix``: every available backend, result by result.

Writes a Markdown table (backend x result: verdict and worst error in units
of the bound), the same as JSON, and each failure's minimal reproducer. With
``--readme`` it also replaces the block between the matrix markers in a
README, so the published matrix is always generated output.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.report import VERDICT_WORDS, to_json, write_atomically
from conformance.runner import (
    DEFAULT_EXAMPLES,
    DEFAULT_SEED,
    SuiteReport,
    check_ids,
    run_suite,
)
from impl import builtin_backends, load_backend
from spec import Violated
from spec.errors import BackpropSpecError, UsageError

if TYPE_CHECKING:
    from conformance.cli import _Parser

logger = logging.getLogger(__name__)

LEFT_OUT_OF_CI = {
    "tinygrad": "its suite run takes about five minutes here (tinygrad compiles "
                "every new shape with the system C compiler, which CI would also "
                "have to install); its adapter tests skip without it",
}
"""Backends whose libraries the project's CI does not install, and why."""

README_START = "<!-- conformance-matrix:start -->"
README_END = "<!-- conformance-matrix:end -->"


def availability() -> list[tuple[str, str, str]]:
    """``(name, "yes" or "no", where it lives or why it cannot load)`` per backend."""
    rows = []
    for name, target in builtin_backends().items():
        try:
            load_backend(name)
        except BackpropSpecError as error:
            rows.append((name, "no", str(error)))
        except Exception as error:  # noqa: BLE001 - a broken install is reported
            rows.append((name, "no", f"{type(error).__name__}: {error}"))
        else:
            rows.append((name, "yes", target))
    return rows


def list_backends() -> str:
    """The text of ``python -m conformance --list``."""
    rows = availability()
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'backend'.ljust(width)}  available  where / why not"]
    lines += [f"{name.ljust(width)}  {ok.ljust(9)}  {detail}" for name, ok, detail in rows]
    return "\n".join(lines)


def _parser() -> _Parser:
    from conformance.cli import _examples, _Parser, _seed

    parser = _Parser(prog="python -m conformance matrix",
                     description="Run every available backend and write the "
                     "conformance matrix as Markdown and JSON.")
    parser.add_argument("--examples", type=_examples, default=DEFAULT_EXAMPLES)
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=Path("docs/matrix"),
                        help="folder for matrix.md and matrix.json "
                        "(default: docs/matrix)")
    parser.add_argument("--backends", default="",
                        help="comma-separated names (default: every known one)")
    parser.add_argument("--readme", type=Path, metavar="FILE",
                        help="also replace the matrix block of this README")
    return parser


def run_matrix(argv: Sequence[str]) -> int:
    """Run the matrix command; exit 0 whether or not backends conform.

    Exit status 2, before any backend runs, for an unknown backend, an
    output folder that cannot be created, or a ``--readme`` without the
    matrix markers.
    """
    parser = _parser()
    args = parser.parse(argv)
    wanted = [n for n in args.backends.split(",") if n] or list(builtin_backends())
    unknown = [n for n in wanted if n not in builtin_backends()]
    if unknown:
        print(f"python -m conformance matrix: error: unknown backend(s) "
              f"{', '.join(unknown)}; see python -m conformance --list",
              file=sys.stderr)
        return 2
    try:
        if args.readme is not None:
            readme_block(args.readme)
        args.out.mkdir(parents=True, exist_ok=True)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{parser.prog}: error: --out {args.out}: cannot create the folder "
              f"({error.strerror or error})", file=sys.stderr)
        return 2
    reports, missing = _run_all(wanted, args.examples, args.seed)
    markdown = render_matrix(reports, missing, args.examples, args.seed)
    write_atomically(args.out / "matrix.md", markdown)
    write_atomically(args.out / "matrix.json", json.dumps(
        _matrix_json(reports, missing), indent=2) + "\n")
    if args.readme is not None:
        try:
            update_readme(args.readme, markdown.split("\n", 2)[2])
        except UsageError as error:  # changed while the backends ran
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 2
    print(markdown)
    return 0


def _run_all(names: list[str], examples: int, seed: int) -> \
        tuple[list[tuple[SuiteReport, float]], dict[str, str]]:
    reports: list[tuple[SuiteReport, float]] = []
    missing: dict[str, str] = {}
    for name in names:
        try:
            backend = load_backend(name)
        except BackpropSpecError as error:
            missing[name] = str(error)
            continue
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr)
        report = run_suite(backend, backend_spec=name, examples=examples, seed=seed)
        reports.append((report, time.perf_counter() - started))
    return reports, missing


def _cell(report: SuiteReport, result_id: str) -> str:
    for result in report.results:
        if result.result_id != result_id:
            continue
        word = VERDICT_WORDS[result.status]
        if result.status == "not-applicable":
            return "n/a"
        if result.counterexample and isinstance(result.counterexample.outcome,
                                                Violated):
            worst = result.counterexample.outcome.worst_error_in_bounds
        else:
            worst = result.worst_error_in_bounds
        return f"{word} ({worst:.2g})" if result.status != "error" else word
    return ""


def render_matrix(reports: list[tuple[SuiteReport, float]], missing: dict[str, str],
                  examples: int, seed: int) -> str:
    """The Markdown matrix: one row per backend, one column per result."""
    ids = check_ids()
    lines = ["# Conformance matrix", "",
             f"Generated by `python -m conformance matrix` ({examples} examples "
             f"per result, seed {seed}). Cells: verdict (worst error in units of "
             "the bound); n/a = not applicable to that backend.", "",
             "| backend | verdict | time (s) | " + " | ".join(f"`{i}`" for i in ids)
             + " |", "|" + "---|" * (len(ids) + 3)]
    for report, seconds in reports:
        verdict = "conformant" if report.conformant else "**not conformant**"
        cells = " | ".join(_cell(report, i) for i in ids)
        lines.append(f"| {report.backend} | {verdict} | {seconds:.1f} | {cells} |")
    if missing:
        lines += ["", "Not run here:", ""]
        lines += [f"- `{name}`: {why}" for name, why in missing.items()]
    lines += ["", "Left out of CI (run here, shown above):", ""]
    lines += [f"- `{name}`: {why}" for name, why in LEFT_OUT_OF_CI.items()]
    failures = _failures(reports)
    if failures:
        lines += ["", "Minimal counterexamples:", ""] + failures
    return "\n".join(lines) + "\n"


def _failures(reports: list[tuple[SuiteReport, float]]) -> list[str]:
    lines: list[str] = []
    for report, _ in reports:
        for result in report.results:
            if not result.failed or result.counterexample is None:
                continue
            outcome = result.counterexample.outcome
            text = outcome.describe() if isinstance(outcome, Violated) else \
                outcome.message
            lines += [f"- **{report.backend}**, `{result.result_id}`: {text}", "",
                      "  ```python"]
            lines += ["  " + line for line in
                      result.counterexample.reproducer.splitlines()]
            lines += ["  ```", ""]
    return lines


def _matrix_json(reports: list[tuple[SuiteReport, float]],
                 missing: dict[str, str]) -> dict[str, Any]:
    return {"backends": [dict(to_json(report), seconds=round(seconds, 2))
                         for report, seconds in reports],
            "not_run": missing}


def readme_block(path: Path) -> tuple[str, str]:
    """The text of ``path`` before and after its matrix block (markers excluded).

    Raises
    ------
    UsageError
        The file cannot be read as UTF-8 text, or lacks either marker.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--readme {path}: no such file")
    except IsADirectoryError:
        raise UsageError(f"--readme {path}: a folder, not a README file")
    except OSError as error:
        raise UsageError(f"--readme {path}: cannot read it "
                         f"({error.strerror or error})")
    except UnicodeDecodeError as error:
        raise UsageError(f"--readme {path}: not UTF-8 text ({error.reason} at "
                         f"byte {error.start})")
    if README_START not in text or README_END not in text.split(README_START, 1)[-1]:
        raise UsageError(f"--readme {path}: has no {README_START} ... "
                         f"{README_END} block to replace; add the two markers, "
                         "in that order, where the matrix goes")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return head, tail


def update_readme(path: Path, markdown: str) -> None:
    """Replace the text between the matrix markers of ``path`` by ``markdown``.

    Raises
    ------
    UsageError
        See :func:`readme_block`.
    """
    head, tail = readme_block(path)
    write_atomically(path, f"{head}{README_START}\n{markdown}{README_END}{tail}")
