"""Large campaigns: backends x dtypes x seeds, split into independent commands.

This module schedules nothing. ``python -m conformance campaign`` prints one
shell command per line, each a complete run of one backend, dtype, seed and
shard of the checks, writing its own JSON report; any existing engine runs
the lines: ``xargs -P``, GNU ``parallel``, a Slurm job array
(``sed -n "${SLURM_ARRAY_TASK_ID}p" jobs.txt | sh``), a CI matrix, or a Dask
or Ray cluster submitting each line as a task. ``python -m conformance
merge`` then folds the reports into one table; a missing or incomplete shard
is named, so a lost machine never passes silently.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conformance.report import READABLE_SCHEMA_VERSIONS
from conformance.runner import check_ids
from spec.errors import UsageError

USAGE_EXIT = 2


def shard_of(check_list: Sequence[str], shard: int, shards: int) -> list[str]:
    """The checks of shard ``shard`` (1-based) out of ``shards``, round robin.

    A shard beyond the number of checks, or a shard of no checks, holds none
    (an empty list, never "every check").

    >>> shard_of(["a", "b", "c", "d", "e"], 2, 2)
    ['b', 'd']
    >>> shard_of(["a", "b"], 3, 3), shard_of([], 1, 2)
    ([], [])
    """
    return [c for index, c in enumerate(check_list) if index % shards == shard - 1]


def report_name(backend: str, dtype: str, seed: int, shard: int, shards: int) -> str:
    """The file name of one job's report; a character a file name had better
    not hold (``:``, ``/``, a space, quotes) becomes ``_``.

    >>> report_name("my mod:backend", "float64", 0, 1, 2)
    'my_mod_backend-float64-seed0-shard1of2.json'
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", backend)
    return f"{safe}-{dtype}-seed{seed}-shard{shard}of{shards}.json"


def plan(backends: list[str], dtypes: list[str], seeds: list[int], shards: int,
         out: Path, examples: int | None, python: str = "python") -> list[str]:
    """One command per backend x dtype x seed x shard."""
    commands = []
    for backend in backends:
        for dtype in dtypes:
            for seed in seeds:
                for shard in range(1, shards + 1):
                    name = report_name(backend, dtype, seed, shard, shards)
                    words = [python, "-m", "conformance", "--backend", backend,
                             "--dtype", dtype, "--seed", str(seed), "--quiet",
                             "--shard", f"{shard}/{shards}",
                             "--report", str(out / name)]
                    if examples is not None:
                        words += ["--examples", str(examples)]
                    commands.append(shlex.join(words))
    return commands


def read_report(path: Path) -> dict[str, Any]:
    """The JSON report at ``path``, checked to be one that ``--report`` writes.

    Raises
    ------
    UsageError
        The file is missing, a folder, unreadable, not JSON, or JSON that is
        not a conformance report.
    """
    if not path.exists():
        raise UsageError(f"{path}: no such file (give the JSON reports the "
                         "campaign's commands wrote with --report)")
    if path.is_dir():
        raise UsageError(f"{path}: a folder, not a report file (give its JSON "
                         f"files, e.g. {path / '*.json'})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror or error})")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not JSON ({error}); give the JSON files "
                         "written by --report")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a conformance report (a JSON "
                         f"{type(data).__name__}, expected an object)")
    fields = {"backend": str, "seed": int, "results": list}
    missing = [name for name, kind in fields.items()
               if not isinstance(data.get(name), kind)]
    if missing or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                          and isinstance(r.get("status"), str)
                          for r in data["results"]):
        what = (f"no valid {', '.join(repr(m) for m in missing)}" if missing
                else "a result without an id or status")
        raise UsageError(f"{path}: not a conformance report ({what}; give the "
                         "JSON files written by --report)")
    version = data.get("schema_version")
    if type(version) is not int or version not in READABLE_SCHEMA_VERSIONS:
        written = ("records no schema_version" if version is None else
                   f"has schema_version {version!r}")
        readable = " and ".join(map(str, READABLE_SCHEMA_VERSIONS))
        raise UsageError(f"{path}: {written}, and this version of backprop-spec "
                         f"reads reports of schema versions {readable} only; "
                         "merge it with the version that wrote it, or run its "
                         "job again with this one")
    for name in ("backend_spec", "dtype"):
        if name in data and not isinstance(data[name], str):
            raise UsageError(f"{path}: not a conformance report ({name} is a "
                             f"{type(data[name]).__name__}, expected a string)")
    if data.get("robustness", "fail") not in ("fail", "report"):
        raise UsageError(f"{path}: not a conformance report (robustness is "
                         f"{data['robustness']!r}, expected 'fail' or 'report')")
    return data


FAILING = ("violated", "error", "robustness")
"""Statuses that fail a merged row (``robustness`` only where its report was
written with ``--robustness fail``)."""


def merge(paths: list[Path]) -> tuple[str, bool]:
    """Fold shard reports into one row per backend x dtype x seed.

    A backend is told apart by what it was loaded by (``backend_spec``, as
    ``--backend`` gave it), not by its name, which two backends may share;
    each result counts as its own report's ``--robustness`` setting says.
    Returns the text and whether everything conformed and was complete.

    Raises
    ------
    UsageError
        A path is not a readable report (see :func:`read_report`), or a
        report that does not record its backend's spec bears the name of
        another backend's, so that the row it belongs to cannot be told.
    """
    reports = [(path, read_report(path)) for path in paths]
    _refuse_ambiguous_names(reports)
    groups: dict[tuple[str, str, int], list[tuple[dict[str, Any], bool]]] = {}
    names: dict[str, str] = {}
    problems = []
    for path, data in reports:
        if not data.get("complete"):
            problems.append(f"{path}: incomplete (the run was interrupted)")
        spec = data.get("backend_spec", data["backend"])
        names[spec] = data["backend"]
        key = (spec, data.get("dtype", "float64"), data["seed"])
        overflow_fails = data.get("robustness", "fail") == "fail"
        groups.setdefault(key, []).extend((r, overflow_fails)
                                          for r in data["results"])
    lines = []
    ok = not problems
    every = check_ids()
    for (spec, dtype, seed), results in sorted(groups.items()):
        seen = {r["id"] for r, _ in results}
        missing = [c for c in every if c not in seen]
        failed = list(dict.fromkeys(
            r["id"] for r, overflow_fails in results if r["status"] in FAILING
            and (r["status"] != "robustness" or overflow_fails)))
        reported = list(dict.fromkeys(
            r["id"] for r, overflow_fails in results
            if r["status"] == "robustness" and not overflow_fails))
        ok = ok and not missing and not failed
        checks = (f"{len(seen)} checks" if not missing else
                  f"{len(seen)} of {len(every)} checks")
        verdict = (f"FAILED: {', '.join(failed)}" if failed else
                   "none failed, no verdict yet" if missing else "conformant")
        label = spec if names[spec] == spec else f"{spec} (named {names[spec]!r})"
        lines.append(f"{label} {dtype} seed {seed}: {checks}, {verdict}"
                     + (f"; overflows reported only (--robustness report): "
                        f"{', '.join(reported)}" if reported else "")
                     + (f"; missing {', '.join(missing)}" if missing else ""))
    return "\n".join(lines + problems), ok


def _refuse_ambiguous_names(reports: list[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse a report without ``backend_spec`` whose backend name another
    report gives a backend loaded by a different spec: which row it belongs
    to cannot be told."""
    specs: dict[str, set[str]] = {}
    for _, data in reports:
        if "backend_spec" in data:
            specs.setdefault(data["backend"], set()).add(data["backend_spec"])
    for path, data in reports:
        others = specs.get(data["backend"], set()) - {data["backend"]}
        if "backend_spec" not in data and others:
            raise UsageError(
                f"{path}: records no backend_spec, and backend name "
                f"{data['backend']!r} is also that of {', '.join(sorted(others))}; "
                "which backend it judged cannot be told, so it is not merged "
                "under either: run its job again to record the spec")


def _listed(option: str, text: str, noun: str = "values") -> list[str]:
    """The comma-separated items of ``text``, each given once and none empty.

    Raises
    ------
    argparse.ArgumentTypeError
        An item is empty or given twice (its jobs would write one report).
    """
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(
            f"{option} {text!r}: expected comma-separated {noun}, got an empty one")
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"{option} {text!r}: {', '.join(twice)} given more than once; the "
            "jobs of each would write the same report, so give each once")
    return items


def _campaign_problem(backends: list[str], shards: int) -> str | None:
    """What makes the campaign's commands fail or clash, or None.

    A backend must be a known name or ``package.module:attribute`` (it is
    loaded by each job, on whichever machine runs it, not here); no two
    backends may share a report name; and every shard must hold a check.
    """
    from impl import builtin_backends

    known = builtin_backends()
    for backend in backends:
        module, colon, attribute = backend.partition(":")
        if backend not in known and not (colon and module and attribute):
            return (f"--backends: {backend!r} is not a known backend "
                    f"({', '.join(known)}) nor of the form "
                    "package.module:attribute")
    names: dict[str, str] = {}
    for backend in backends:
        name = report_name(backend, "float64", 0, 1, 1)
        if name in names:
            return (f"--backends: {names[name]!r} and {backend!r} would write "
                    "reports of the same file name; run them as two campaigns "
                    "with different --out folders")
        names[name] = backend
    every = len(check_ids())
    if shards > every:
        return (f"--shards {shards}: the suite has {every} checks, so shards "
                f"beyond the {every}th would hold none; give --shards {every} "
                "or fewer")
    return None


def run_campaign_command(argv: Sequence[str]) -> int:
    """``python -m conformance campaign``: print the commands of a campaign.

    The options are checked as the main command checks them (exit status 2
    and one line naming the option), so that no job is planned to fail.
    """
    from conformance.cli import _examples, _Parser, _positive, _seed

    parser = _Parser(prog="python -m conformance campaign",
                     description="Print one command per backend x dtype x seed x "
                     "shard; run them with any engine, then merge the reports.")
    parser.add_argument("--backends", required=True,
                        help="comma-separated, each once: known names or "
                        "package.module:attribute (each job loads its backend)")
    parser.add_argument("--dtypes", default="float64",
                        help="comma-separated, each once: float64, float32")
    parser.add_argument("--seeds", default="0",
                        help="comma-separated whole numbers, 0 or more, each once")
    parser.add_argument("--shards", type=_positive, default=1,
                        help=f"at most the number of checks ({len(check_ids())})")
    parser.add_argument("--examples", type=_examples)
    parser.add_argument("--out", type=Path, default=Path("campaign"),
                        help="folder for the reports, created if missing "
                        "(default: campaign)")
    args = parser.parse(argv)
    try:
        backends = _listed("--backends", args.backends, "backend names")
        dtypes = _listed("--dtypes", args.dtypes, "dtypes")
        seed_words = _listed("--seeds", args.seeds, "seeds")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    seeds = []
    for word in seed_words:
        try:
            seeds.append(_seed(word))
        except argparse.ArgumentTypeError as error:
            parser.error(f"--seeds {args.seeds!r}: {error}")
    if len(set(seeds)) < len(seeds):
        parser.error(f"--seeds {args.seeds!r}: a seed given more than once (as "
                     f"{', '.join(seed_words)}); give each once")
    bad = [d for d in dtypes if d not in ("float64", "float32")]
    if bad:
        parser.error(f"--dtypes: {', '.join(bad)} is not float64 or float32")
    problem = _campaign_problem(backends, args.shards)
    if problem:
        parser.error(problem)
    # The jobs write their reports there; create it so that they can, here or
    # on any machine sharing this file system.
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: cannot create the report folder "
                     f"({error.strerror or error})")
    for command in plan(backends, dtypes, seeds, args.shards, args.out,
                        args.examples, sys.executable):
        print(command)
    return 0


def run_merge_command(argv: Sequence[str]) -> int:
    """``python -m conformance merge REPORT...``: exit 0 only if all conformed.

    Exit status 1 when a check failed or is missing, or a report is
    incomplete; 2 when a path given is not a report (missing, unreadable,
    not JSON, or not a conformance report).
    """
    from conformance.cli import _Parser

    parser = _Parser(prog="python -m conformance merge",
                     description="Fold the JSON reports of a campaign.")
    parser.add_argument("reports", nargs="+", type=Path, metavar="REPORT",
                        help="JSON reports written by the campaign's commands")
    args = parser.parse(argv)
    try:
        text, ok = merge(args.reports)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return USAGE_EXIT
    print(text)
    return 0 if ok else 1
