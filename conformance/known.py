"""Known differences: an expected-failures file a project adopts the suite with.

The file is TOML, one table per known difference, each with a reason::

    [[difference]]
    backend = "torch"
    check = "cost"
    reason = "operation counts exist only for the bundled implementations"

A listed check that fails is reported as ``expected failure`` and does not
fail the run; a listed check that now holds is reported as ``unexpectedly
passing``, so the entry can be removed. ``backend`` matches the backend's
name or the name it was loaded by; ``"*"`` matches any backend.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance.runner import SuiteReport
from spec.errors import UsageError


@dataclass(frozen=True)
class KnownDifference:
    """One entry of the file."""

    backend: str
    check: str
    reason: str


def load_known(path: Path, valid_checks: list[str]) -> list[KnownDifference]:
    """Read and validate an expected-failures file.

    Raises
    ------
    UsageError
        The file is missing, not TOML, or an entry lacks a field or names an
        unknown check.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--expected-failures {path}: cannot read it ({error})")
    except UnicodeDecodeError as error:
        raise UsageError(f"--expected-failures {path}: not UTF-8 text "
                         f"({error.reason} at byte {error.start}); save it as UTF-8")
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--expected-failures {path}: not valid TOML ({error})")
    entries = data.get("difference", [])
    if not isinstance(entries, list):
        raise UsageError(f"--expected-failures {path}: expected [[difference]] "
                         "tables")
    known = []
    for number, entry in enumerate(entries, start=1):
        missing = [key for key in ("backend", "check", "reason")
                   if not isinstance(entry.get(key), str) or not entry.get(key)]
        if missing:
            raise UsageError(f"--expected-failures {path}: difference {number} "
                             f"lacks {', '.join(missing)} (each entry needs "
                             "backend, check and reason)")
        if entry["check"] not in valid_checks:
            raise UsageError(f"--expected-failures {path}: difference {number} "
                             f"names check {entry['check']!r}, which does not "
                             f"exist; known: {', '.join(valid_checks)}")
        known.append(KnownDifference(entry["backend"], entry["check"],
                                     entry["reason"]))
    return known


def apply_known(report: SuiteReport, known: list[KnownDifference],
                backend_spec: str) -> None:
    """Mark listed failures as expected and listed passes as unexpected."""
    for result in report.results:
        entry = next((k for k in known if k.check == result.result_id and
                      k.backend in ("*", report.backend, backend_spec)), None)
        if entry is None:
            continue
        if result.failed or result.status == "robustness":
            result.status = "expected-failure"
            result.message = f"known difference: {entry.reason}"
        elif result.status == "holds":
            result.status = "unexpected-pass"
            result.message = (f"listed as a known difference ({entry.reason}) but "
                              "holds now; remove it from the file")
