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


def merge(paths: list[Path]) -> tuple[str, bool]:
    """Fold shard reports into one table per backend x dtype x seed.

    Returns the text and whether everything conformed and was complete.
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    problems = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: unreadable ({error})")
            continue
        if not data.get("complete"):
            problems.append(f"{path}: incomplete (the run was interrupted)")
        key = (data["backend"], data.get("dtype", "float64"), data["seed"])
        groups.setdefault(key, []).extend(data["results"])
    lines = []
    ok = not problems
    for (backend, dtype, seed), results in sorted(groups.items()):
        seen = {r["id"] for r in results}
        missing = [c for c in check_ids() if c not in seen]
        failed = [r["id"] for r in results if r["status"] in
                  ("violated", "error", "robustness")]
        ok = ok and not missing and not failed
        verdict = "conformant" if not failed else f"FAILED: {', '.join(failed)}"
        lines.append(f"{backend} {dtype} seed {seed}: {len(results)} checks, "
                     f"{verdict}" + (f"; missing {', '.join(missing)}"
                                     if missing else ""))
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
    """``python -m conformance merge REPORT...``: exit 0 only if all conformed."""
    from conformance.cli import _Parser

    parser = _Parser(prog="python -m conformance merge",
                     description="Fold the JSON reports of a campaign.")
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args(list(argv))
    text, ok = merge(args.reports)
    print(text)
    return 0 if ok else 1
