"""``python -m conformance`` run in a subprocess, as a user runs it.

Shared by the tests that judge the command line from outside; the folder's
``conftest.py`` puts this folder on ``sys.path`` so they can import it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout under test; it comes first on the subprocess's path."""


def run_cli(*args: str, cwd: Path = REPO, extra_path: Path | None = None,
            env: dict[str, str] | None = None, umask: int | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m conformance *args`` and capture its output.

    ``extra_path`` (a folder of test backends) follows the checkout on
    ``PYTHONPATH``; ``env`` adds variables; ``umask`` sets the process's
    file-creation mask. Output that is not valid UTF-8 is kept, replaced.
    """
    environment = dict(os.environ, **(env or {}))
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd,
                          env=environment, capture_output=True, text=True,
                          errors="replace", timeout=timeout,
                          umask=-1 if umask is None else umask)
