"""``python -m conformance``: judge a backend and print the verdict per result.

Exit status: 0 when the backend conforms, 1 when a result is violated or the
backend misbehaved, 2 for a usage error or a backend that cannot be loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from conformance.campaign import run_campaign_command, run_merge_command, shard_of
from conformance.formats import to_junit, to_markdown, write_atomically
from conformance.known import apply_known, load_known
from conformance.profiles import PROFILE_EXAMPLES, chosen_profile
from conformance.progress import Progress
from conformance.report import render_failures, render_notes, render_table, write_json
import numpy as np

from conformance._guard import DEFAULT_TIME_LIMIT
from conformance import _options
from conformance.matrix import list_backends, run_matrix
from conformance.runner import DEFAULT_SEED, SuiteReport, check_ids, run_suite
from impl import MpmathBackend, load_backend
from impl.oracle import DEFAULT_DIGITS
from spec.errors import BackpropSpecError

EXIT_CONFORMANT = 0
EXIT_VIOLATED = 1
EXIT_USAGE = 2

EXAMPLES = """\
examples:
  python -m conformance                          judge the bundled reference backend
  python -m conformance --backend torch          judge PyTorch autograd
  python -m conformance --backend mymod:backend  judge your own code
  python -m conformance --examples 200 --seed 7 --report report.json
  python -m conformance --profile thorough -j 2 --junit junit.xml
  python -m conformance --backend torch --expected-failures known.toml
  python -m conformance --backend torch --dtype float32
  python -m conformance --list                   which backends are available here
  python -m conformance matrix                   every available backend, as a table
  python -m conformance campaign --backends reference,torch --seeds 0,1 --shards 2
  python -m conformance merge campaign/*.json    fold a campaign's reports
"""


class _Parser(argparse.ArgumentParser):
    """A parser whose errors exit with :data:`EXIT_USAGE`, naming its command."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                  f"try '{self.prog} --help'\n")


_positive = _options.positive
_seed = _options.seed
_seconds = _options.seconds
_digits = _options.oracle_digits
"""The option validators shared with the pytest plugin (the first two also
serve ``matrix`` and ``campaign``)."""


DTYPES: dict[str, type[np.floating]] = {"float64": np.float64, "float32": np.float32}


def _shard(text: str) -> tuple[int, int]:
    shard, _, shards = text.partition("/")
    try:
        pair = int(shard), int(shards)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 2/4, got {text!r}")
    if not 1 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= I <= N, got {text!r}")
    return pair


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("backprop-spec")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = _Parser(
        prog="python -m conformance",
        description="Judge a backpropagation implementation against the spec, "
        "result by result, with a high-precision oracle (Arb balls, 30 digits).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="reference",
                        help="reference, jacobian-product, mpmath, torch, jax, "
                        "autograd, tinygrad, sklearn, micrograd, mygrad (see "
                        "--list), or package.module:attribute (default: reference)")
    parser.add_argument("--version", action="version",
                        version=f"backprop-spec {_version()}")
    parser.add_argument("--profile", choices=sorted(PROFILE_EXAMPLES),
                        help="dev (10 examples per check), ci (40, the default) or "
                        "thorough (2000); also from $BACKPROP_SPEC_PROFILE")
    parser.add_argument("--examples", type=_positive, default=None,
                        help="examples per check (default: the profile's)")
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                        help=f"Hypothesis seed (default: {DEFAULT_SEED})")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64",
                        help="precision the backend computes in; the error bound "
                        "is scaled to its rounding (default: float64)")
    parser.add_argument("--oracle-digits", type=_digits, default=DEFAULT_DIGITS,
                        metavar="N", help="significant digits of the oracle "
                        f"(default: {DEFAULT_DIGITS}, at least "
                        f"{_options.MIN_ORACLE_DIGITS})")
    parser.add_argument("--robustness", choices=("fail", "report"), default="fail",
                        help="whether inf or NaN where the exact values are finite "
                        "(an overflowing formula) makes the run fail (exit 1) or is "
                        "only reported (default: fail)")
    parser.add_argument("--time-limit", type=_seconds, default=DEFAULT_TIME_LIMIT,
                        metavar="SECONDS", help="seconds one backend call may take "
                        f"before it is reported as hung (default: {DEFAULT_TIME_LIMIT:g})")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="also write the report as JSON to FILE")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="also write JUnit XML for CI systems to FILE")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write a Markdown summary to FILE")
    parser.add_argument("--expected-failures", type=Path, metavar="FILE",
                        help="TOML file of known differences: listed failures are "
                        "reported, not failed (see docs)")
    parser.add_argument("--database", metavar="DIR",
                        help="keep failing examples in this Hypothesis example "
                        "database and replay them first on the next run")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="run only the I-th of N round-robin shares of the "
                        "checks (for campaigns spread over machines)")
    parser.add_argument("-j", "--jobs", type=_positive, default=1,
                        help="run checks in N processes (default: 1)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress and no table: only the verdict line and "
                        "any failures")
    parser.add_argument("--list", action="store_true",
                        help="list every known backend, whether it can be "
                        "loaded here, and why not; then exit")
    parser.add_argument("--only", action="append", default=[], metavar="RESULT_ID",
                        choices=check_ids(),
                        help="check only this result (repeatable)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress (-v) or every example (-vv)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["matrix"]:
        return run_matrix(arguments[1:])
    if arguments[:1] == ["campaign"]:
        return run_campaign_command(arguments[1:])
    if arguments[:1] == ["merge"]:
        return run_merge_command(arguments[1:])
    args = build_parser().parse_args(arguments)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.list:
        print(list_backends())
        return EXIT_CONFORMANT
    for option, path in (("--report", args.report), ("--junit", args.junit),
                         ("--markdown", args.markdown)):
        if path is not None and str(path.parent) and not path.parent.exists():
            print(f"python -m conformance: error: {option} {path}: folder "
                  f"{path.parent} does not exist", file=sys.stderr)
            return EXIT_USAGE
    try:
        profile = chosen_profile(args.profile)
        known = (load_known(args.expected_failures, check_ids())
                 if args.expected_failures else [])
        backend = load_backend(args.backend)
    except BackpropSpecError as error:
        print(f"python -m conformance: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    examples = args.examples or PROFILE_EXAMPLES[profile]
    if args.shard is not None:
        args.only = shard_of(args.only or check_ids(), *args.shard)

    def save(report: SuiteReport) -> None:
        apply_known(report, known, args.backend)
        if args.report is not None:
            write_json(report, args.report)
        if args.junit is not None:
            write_atomically(args.junit, to_junit(report))
        if args.markdown is not None:
            write_atomically(args.markdown, to_markdown(report))

    progress = Progress.for_terminal(quiet=args.quiet,
                                     total=_count_checks(args.only), examples=examples)

    def on_result(report: SuiteReport) -> None:
        save(report)
        progress.finished(report)

    try:
        with progress:
            report = run_suite(
                backend, backend_spec=args.backend, examples=examples,
                seed=args.seed, only=args.only, dtype=DTYPES[args.dtype],
                oracle=MpmathBackend(args.oracle_digits),
                on_result=on_result,
                on_example=progress.example, jobs=args.jobs, database=args.database,
                robustness_fails=args.robustness == "fail", time_limit=args.time_limit)
    except KeyboardInterrupt:
        print("\ninterrupted; the report files hold every check finished so far, "
              "marked incomplete", file=sys.stderr)
        return 130
    save(report)
    _print_report(report, quiet=args.quiet, shard=args.shard)
    return EXIT_CONFORMANT if report.conformant else EXIT_VIOLATED


def _count_checks(only: Sequence[str]) -> int:
    return len(only) if only else len(check_ids())


def _print_report(report: SuiteReport, *, quiet: bool,
                  shard: tuple[int, int] | None = None) -> None:
    table = render_table(report, shard=shard)
    print(table.splitlines()[-1] if quiet else table)
    notes = render_notes(report)
    if notes:
        print()
        print(notes)
    failures = render_failures(report)
    if failures:
        print()
        print(failures)
