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

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conformance.runner import check_ids
from spec.errors import UsageError

USAGE_EXIT = 2


def shard_of(check_list: Sequence[str], shard: int, shards: int) -> list[str]:
    """The checks of shard ``shard`` (1-based) out of ``shards``, round robin.

    >>> shard_of(["a", "b", "c", "d", "e"], 2, 2)
    ['b', 'd']
    """
    return [c for index, c in enumerate(check_list) if index % shards == shard - 1]


def plan(backends: list[str], dtypes: list[str], seeds: list[int], shards: int,
         out: Path, examples: int | None, python: str = "python") -> list[str]:
    """One command per backend x dtype x seed x shard."""
    commands = []
    for backend in backends:
        for dtype in dtypes:
            for seed in seeds:
                for shard in range(1, shards + 1):
                    name = f"{backend.replace(':', '_')}-{dtype}-seed{seed}-" \
                           f"shard{shard}of{shards}.json"
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
    return data


def merge(paths: list[Path]) -> tuple[str, bool]:
    """Fold shard reports into one table per backend x dtype x seed.

    Returns the text and whether everything conformed and was complete.

    Raises
    ------
    UsageError
        A path is not a readable report (see :func:`read_report`).
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    problems = []
    for path in paths:
        data = read_report(path)
        if not data.get("complete"):
            problems.append(f"{path}: incomplete (the run was interrupted)")
        key = (data["backend"], data.get("dtype", "float64"), data["seed"])
        groups.setdefault(key, []).extend(data["results"])
    lines = []
    ok = not problems
    every = check_ids()
    for (backend, dtype, seed), results in sorted(groups.items()):
        seen = {r["id"] for r in results}
        missing = [c for c in every if c not in seen]
        failed = list(dict.fromkeys(r["id"] for r in results if r["status"] in
                                    ("violated", "error", "robustness")))
        ok = ok and not missing and not failed
        checks = (f"{len(seen)} checks" if not missing else
                  f"{len(seen)} of {len(every)} checks")
        verdict = (f"FAILED: {', '.join(failed)}" if failed else
                   "none failed, no verdict yet" if missing else "conformant")
        lines.append(f"{backend} {dtype} seed {seed}: {checks}, {verdict}"
                     + (f"; missing {', '.join(missing)}" if missing else ""))
    return "\n".join(lines + problems), ok


def run_campaign_command(argv: Sequence[str]) -> int:
    """``python -m conformance campaign``: print the commands of a campaign."""
    from conformance.cli import _Parser, _positive

    parser = _Parser(prog="python -m conformance campaign",
                     description="Print one command per backend x dtype x seed x "
                     "shard; run them with any engine, then merge the reports.")
    parser.add_argument("--backends", required=True, help="comma-separated")
    parser.add_argument("--dtypes", default="float64", help="comma-separated")
    parser.add_argument("--seeds", default="0", help="comma-separated integers")
    parser.add_argument("--shards", type=_positive, default=1)
    parser.add_argument("--examples", type=_positive)
    parser.add_argument("--out", type=Path, default=Path("campaign"),
                        help="folder for the reports, created if missing "
                        "(default: campaign)")
    args = parser.parse_args(list(argv))
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected comma-separated integers")
    bad = [d for d in args.dtypes.split(",") if d not in ("float64", "float32")]
    if bad:
        parser.error(f"--dtypes: {', '.join(bad)} is not float64 or float32")
    # The jobs write their reports there; create it so that they can, here or
    # on any machine sharing this file system.
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: cannot create the report folder ({error})")
    for command in plan(args.backends.split(","), args.dtypes.split(","), seeds,
                        args.shards, args.out, args.examples, sys.executable):
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
    args = parser.parse_args(list(argv))
    try:
        text, ok = merge(args.reports)
    except UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return USAGE_EXIT
    print(text)
    return 0 if ok else 1
