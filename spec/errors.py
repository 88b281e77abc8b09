"""The project's exception hierarchy.

Every class also inherits the built-in exception that matches its misuse, so
``except ValueError`` keeps working for callers who do not know ours.
"""

from __future__ import annotations


class BackpropSpecError(Exception):
    """Base of every exception raised on purpose by this project."""


class UsageError(BackpropSpecError, ValueError):
    """An argument or option has a value that cannot be used."""


class ArgumentTypeError(BackpropSpecError, TypeError):
    """An argument is of a kind that cannot be used (not merely a bad value)."""


class BackendLoadError(BackpropSpecError, ImportError):
    """A backend named on the command line or in code cannot be loaded."""


class BackendLimitError(BackpropSpecError, ValueError):
    """A backend was asked for a problem beyond the size it supports."""


class CapabilityError(BackpropSpecError, NotImplementedError):
    """A check needs a capability the backend did not declare."""
