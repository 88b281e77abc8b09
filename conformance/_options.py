"""Validators of the command-line options ``python -m conformance`` and the
pytest plugin share: each turns the option's text into its value or raises
:class:`argparse.ArgumentTypeError` with the message both print.
"""

from __future__ import annotations

import argparse

MIN_ORACLE_DIGITS = 20
"""Fewest significant digits of the mpmath oracle either command accepts."""

MAX_EXAMPLES = 100_000
"""Most examples per check any command accepts: fifty times the ``thorough``
profile, about a day per check on a fast backend; beyond it a typing slip
(an extra zero or two) would keep a run going for weeks."""


def _whole_number(text: str, least: int, requirement: str) -> int:
    """``text`` as an int of at least ``least``; ``requirement`` says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {requirement}, got {value}")
    return value


def positive(text: str) -> int:
    """A count: a whole number, 1 or more."""
    return _whole_number(text, 1, "at least 1")


def examples(text: str) -> int:
    """Examples per check: a whole number from 1 to :data:`MAX_EXAMPLES`."""
    value = positive(text)
    if value > MAX_EXAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_EXAMPLES} examples per check, got {value}")
    return value


def seed(text: str) -> int:
    """A Hypothesis seed: a whole number, 0 or more."""
    return _whole_number(text, 0, "0 or more")


def seconds(text: str) -> float:
    """A duration: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 seconds, got {text}")
    return value


def oracle_digits(text: str) -> int:
    """The oracle's significant digits: a whole number, at least
    :data:`MIN_ORACLE_DIGITS`."""
    value = positive(text)
    if value < MIN_ORACLE_DIGITS:
        raise argparse.ArgumentTypeError(
            f"expected at least {MIN_ORACLE_DIGITS}, got {value}")
    return value
