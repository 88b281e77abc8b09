"""Run profiles: how many examples a check draws, as Hypothesis settings profiles.

``dev`` is fast, for the edit-run loop; ``ci`` is the default; ``thorough``
draws at least 2,000 examples per check, for release checks and for
establishing that a backend is never falsely blamed. Choose one with
``--profile`` or the ``BACKPROP_SPEC_PROFILE`` environment variable;
``--examples`` overrides the count.
"""

from __future__ import annotations

import os

from hypothesis import settings

from spec.errors import UsageError

PROFILE_EXAMPLES = {"dev": 10, "ci": 40, "thorough": 2000}
"""Examples per check in each profile."""

ENVIRONMENT_VARIABLE = "BACKPROP_SPEC_PROFILE"
DEFAULT_PROFILE = "ci"

for _name, _examples in PROFILE_EXAMPLES.items():
    settings.register_profile(f"backprop-spec-{_name}", max_examples=_examples,
                              deadline=None, database=None)


def chosen_profile(option: str | None) -> str:
    """The profile named by the option, else by the environment, else ``ci``.

    Raises
    ------
    UsageError
        The environment variable names no profile.
    """
    name = option or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PROFILE
    if name not in PROFILE_EXAMPLES:
        raise UsageError(f"{ENVIRONMENT_VARIABLE}={name!r} is not a profile; "
                         f"choose one of {', '.join(PROFILE_EXAMPLES)}")
    return name


def profile_settings(name: str) -> settings:
    """The registered Hypothesis settings of profile ``name``."""
    return settings.get_profile(f"backprop-spec-{name}")
