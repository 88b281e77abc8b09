"""Entry point of ``python -m conformance``."""

from conformance.cli import entry

entry()
