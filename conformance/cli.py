"""``python -m conformance``: judge a backend and print the verdict per result.

Exit status: 0 when the backend conforms, 1 when a result is violated or the
backend misbehaved, 2 for a usage error or a backend that cannot be loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from conformance.campaign import run_campaign_command, run_merge_command, shard_of
from conformance.formats import printable, to_junit, to_markdown, write_atomically
from conformance.known import apply_known, load_known
from conformance.profiles import PROFILE_EXAMPLES, chosen_profile
from conformance.progress import Progress
from conformance.report import (
    json_text,
    output_problem,
    render_failures,
    render_notes,
    render_table,
)
import numpy as np

from conformance._guard import DEFAULT_TIME_LIMIT
from conformance import _options
from conformance.matrix import list_backends, run_matrix
from conformance.runner import (
    DEFAULT_SEED,
    SuiteReport,
    check_ids,
    exit_without_waiting_for_backend_threads,
    run_suite,
)
from impl import MpmathBackend, load_backend
from impl.oracle import DEFAULT_DIGITS
from spec.errors import BackpropSpecError

EXIT_CONFORMANT = 0
EXIT_VIOLATED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

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

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """Parse ``argv``, taking a value that starts with a minus and a digit
        (``--shard -1/2``, ``--seeds -1,2``) as the option's value.

        argparse would take such a value for an option and answer "expected
        one argument"; as the option's value it gets the option's own
        message, which says what is allowed.
        """
        arguments = list(argv)
        joined: list[str] = []
        index = 0
        while index < len(arguments):
            word = arguments[index]
            action = self._option_string_actions.get(word)
            following = arguments[index + 1] if index + 1 < len(arguments) else ""
            if (action is not None and action.nargs is None
                    and following[:1] == "-" and following[1:2].isdigit()):
                joined.append(f"{word}={following}")
                index += 2
            else:
                joined.append(word)
                index += 1
        return self.parse_args(joined)


def _file_name(text: str) -> Path:
    """A report file's name: not empty (an empty name is the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    return Path(text)


_positive = _options.positive
_examples = _options.examples
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


def build_parser() -> _Parser:
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
    parser.add_argument("--examples", type=_examples, default=None,
                        help="examples per check, at most "
                        f"{_options.MAX_EXAMPLES} (default: the profile's)")
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
    parser.add_argument("--report", type=_file_name, metavar="FILE",
                        help="also write the report as JSON to FILE")
    parser.add_argument("--junit", type=_file_name, metavar="FILE",
                        help="also write JUnit XML for CI systems to FILE")
    parser.add_argument("--markdown", type=_file_name, metavar="FILE",
                        help="also write a Markdown summary to FILE")
    parser.add_argument("--expected-failures", type=Path, metavar="FILE",
                        help="TOML file of known differences: listed failures are "
                        "reported, not failed (see docs)")
    parser.add_argument("--database", metavar="DIR",
                        help="keep failing examples in this Hypothesis example "
                        "database and replay them first on the next run")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="run only the I-th of N round-robin shares of the "
                        "checks, or of those --only chooses (for campaigns "
                        "spread over machines); a shard beyond the number of "
                        "checks holds none and judges nothing")
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
    parser = build_parser()
    args = parser.parse(arguments)
    _write_any_character(sys.stdout)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.list:
        print(list_backends())
        return EXIT_CONFORMANT
    problem = _check_paths(args)
    if problem:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        profile = chosen_profile(args.profile)
        known = (load_known(args.expected_failures, check_ids())
                 if args.expected_failures else [])
        backend = load_backend(args.backend)
    except BackpropSpecError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    examples = args.examples or PROFILE_EXAMPLES[profile]
    # The checks to run, in the suite's order: those --only names (each
    # once), else all; a shard takes its share of them.
    chosen = [c for c in check_ids() if not args.only or c in args.only]
    pool = len(chosen)
    if args.shard is not None:
        chosen = shard_of(chosen, *args.shard)

    def save(report: SuiteReport) -> None:
        apply_known(report, known, args.backend)
        outputs: list[tuple[Path | None, str, Callable[[], str]]] = [
            (args.report, "--report",
             lambda: json_text(report, backend_spec=args.backend)),
            (args.junit, "--junit", lambda: to_junit(report, chosen)),
            (args.markdown, "--markdown", lambda: to_markdown(report))]
        for path, option, text in outputs:
            if path is None:
                continue
            try:
                write_atomically(path, text())
            except OSError as error:
                raise _UnwritableReport(
                    f"{option} {path}: could not be written "
                    f"({error.strerror or error}); the run stopped") from error

    progress = Progress.for_terminal(quiet=args.quiet, total=len(chosen),
                                     examples=examples)

    def on_result(report: SuiteReport) -> None:
        save(report)
        progress.finished(report)

    try:
        with progress:
            report = run_suite(
                backend, backend_spec=args.backend, examples=examples,
                seed=args.seed, only=chosen, dtype=DTYPES[args.dtype],
                oracle=MpmathBackend(args.oracle_digits),
                on_result=on_result,
                on_example=progress.example, jobs=args.jobs, database=args.database,
                robustness_fails=args.robustness == "fail", time_limit=args.time_limit)
        save(report)
    except KeyboardInterrupt:
        print("\ninterrupted; the report files hold every check finished so far, "
              "marked incomplete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _UnwritableReport as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _print_report(report, quiet=args.quiet, shard=args.shard, pool=pool)
    return EXIT_CONFORMANT if report.conformant else EXIT_VIOLATED


def _write_any_character(stream: object) -> None:
    """Have ``stream`` write a character its encoding cannot hold (a lone
    surrogate in a backend's message) as an escape instead of raising, as
    standard error already does."""
    reconfigure = getattr(stream, "reconfigure", None)
    if callable(reconfigure) and getattr(stream, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")


class _UnwritableReport(Exception):
    """A report file could not be written during the run."""


_PATH_OPTIONS = (("--report", "report"), ("--junit", "junit"),
                 ("--markdown", "markdown"),
                 ("--expected-failures", "expected_failures"))
"""The options naming files, and where argparse keeps each; the first three
are written, the last is read."""


def _check_paths(args: argparse.Namespace) -> str | None:
    """What is wrong with the files and folders named, before anything runs.

    Makes every path absolute first, so that a backend changing the working
    directory cannot send later writes elsewhere; then each report must be
    writable, no two options may name the same file, and ``--database`` must
    be a folder (or not exist yet).
    """
    seen: dict[Path, str] = {}
    for option, dest in _PATH_OPTIONS:
        if getattr(args, dest) is None:
            continue
        path = Path(os.path.abspath(getattr(args, dest)))
        setattr(args, dest, path)
        same = seen.get(path.resolve())
        if same is not None:
            clobbers = (" (a report written there would replace the "
                        "expected-failures file)"
                        if option == "--expected-failures" else "")
            return (f"{same} and {option} both name {path}; give each its own "
                    f"file{clobbers}")
        seen[path.resolve()] = option
        problem = None if option == "--expected-failures" else output_problem(path)
        if problem:
            return f"{option} {path}: {problem}"
    if args.database is not None:
        database = Path(os.path.abspath(args.database))
        args.database = str(database)
        blocking = next((p for p in [database, *database.parents] if p.exists()),
                        None)
        if blocking is not None and not blocking.is_dir():
            return (f"--database {database}: {blocking} is a file, not a folder; "
                    "the database is a folder of examples (give a new or "
                    "existing folder)")
    return None


def _print_report(report: SuiteReport, *, quiet: bool,
                  shard: tuple[int, int] | None = None,
                  pool: int | None = None) -> None:
    # A backend's messages may hold terminal escape sequences or control
    # characters; the terminal gets them written out, never obeyed.
    table = printable(render_table(report, shard=shard, pool=pool))
    print(table.splitlines()[-1] if quiet else table)
    notes = printable(render_notes(report))
    if notes:
        print()
        print(notes)
    failures = printable(render_failures(report))
    if failures:
        print()
        print(failures)


def entry() -> None:
    """``python -m conformance`` and ``backprop-spec``: :func:`main`, then exit.

    The process ends with :func:`main`'s status without waiting for threads
    a backend started and left running (they are named on standard error).
    """
    status: int | str | None
    try:
        status = main()
    except KeyboardInterrupt:
        print("python -m conformance: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    except SystemExit as error:
        status = error.code
    except BaseException:  # noqa: BLE001 - shown, then the process ends
        # Shown before exiting, which may not wait for threads the backend
        # left running.
        traceback.print_exc()
        status = 1
    if isinstance(status, int):
        status = exit_without_waiting_for_backend_threads(status)
    sys.exit(status)
