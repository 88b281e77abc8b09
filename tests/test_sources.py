"""Every Python source of the project compiles without a warning.

A docstring with ``\\e`` or ``\\s`` outside a raw string is an invalid escape
sequence: Python warns only when it compiles the file, so a warm bytecode
cache hides it until a fresh checkout prints it in the middle of a run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCES = sorted(path for folder in ("spec", "impl", "conformance", "benchmarks", "tests")
                 for path in (REPOSITORY / folder).rglob("*.py"))


def test_the_sources_are_found() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_source_compiles_without_warnings(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(text, str(path), "exec", dont_inherit=True)
