"""Backends that attack the process judging them: ``sys.exit``, ``os._exit`` in
a worker, threads that never end, and the same under pytest; and the command
line's verdict on inf or NaN with ``--robustness report``.

Every run is a subprocess, with the backends written to a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BACKENDS = '''
import os
import sys
import threading
import time

import numpy as np

from impl import ReferenceBackend, function_backend

REFERENCE = ReferenceBackend()


def answer(network, parameters, inputs, targets):
    return REFERENCE.loss_and_gradients(network, parameters, inputs, targets)


@function_backend("exits")
def exits(network, parameters, inputs, targets):
    sys.exit(0)


@function_backend("nan-out")
def nan_out(network, parameters, inputs, targets):
    result = answer(network, parameters, inputs, targets)
    return (result.loss, [np.full_like(w, np.nan) for w in result.gradients.weights],
            result.gradients.biases)


@function_backend("ends-process-on-wide")
def ends_process_on_wide(network, parameters, inputs, targets):
    if max(network.widths) >= 6:
        os._exit(0)
    return answer(network, parameters, inputs, targets)


@function_backend("closes-stdout")
def closes_stdout(network, parameters, inputs, targets):
    sys.stdout.close()
    return answer(network, parameters, inputs, targets)


@function_backend("leaves-a-thread")
def leaves_a_thread(network, parameters, inputs, targets):
    if not any(t.name == "backend-sleeper" for t in threading.enumerate()):
        threading.Thread(target=time.sleep, args=(10**6,), name="backend-sleeper",
                         daemon=False).start()
    return answer(network, parameters, inputs, targets)
'''

TIMEOUT = 300
"""Seconds a subprocess may take: a hang fails the test instead of stalling it."""


@pytest.fixture()
def backends(tmp_path: Path) -> Path:
    (tmp_path / "hostile.py").write_text(BACKENDS)
    return tmp_path


def environment(folder: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(folder)]))


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=folder,
                          env=environment(folder), capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_a_backend_calling_sys_exit_fails_the_run_with_a_diagnosis(
        backends: Path) -> None:
    result = run_cli(backends, "--backend", "hostile:exits", "--examples", "3",
                     "--only", "layer-jacobian.affine", "-q")

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (
        "NOT conformant: the backend misbehaved in 1 of 1 checks (see below); "
        "nothing could be judged there")
    assert ("layer-jacobian.affine: backend 'exits' called sys.exit(0) on network "
            "1-1 identity squared_error, batch 1") in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_nan_where_nothing_overflows_fails_the_run_even_with_robustness_report(
        backends: Path) -> None:
    result = run_cli(backends, "--backend", "hostile:nan_out", "--examples", "3",
                     "--only", "robustness", "--robustness", "report", "-q")

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("NOT conformant: the backend misbehaved in 1 of "
                                    "1 checks")
    assert "nothing in the case can overflow" in result.stdout
    assert "this is a wrong answer, not an overflow" in result.stdout
    assert "numerically fragile" not in result.stdout


def test_a_worker_process_ended_by_the_backend_is_reported_per_check(
        backends: Path) -> None:
    result = run_cli(backends, "--backend", "hostile:ends_process_on_wide", "-j", "2",
                     "--examples", "10", "--only", "backprop.batch-mean", "--only",
                     "layer-jacobian.affine", "-q")

    assert result.returncode == 1, result.stdout + result.stderr
    assert ("backprop.batch-mean: not finished: a worker process (-j 2) ended "
            "abruptly, which stops every check not finished by then; the backend "
            "most likely ended its own process (os._exit, os.abort or a signal)"
            ) in result.stdout
    assert "python -m conformance --backend hostile:ends_process_on_wide --only " \
        "backprop.batch-mean" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "BrokenProcessPool" not in result.stdout + result.stderr


def test_worker_processes_end_although_the_backend_left_threads_running(
        backends: Path) -> None:
    result = run_cli(backends, "--backend", "hostile:leaves_a_thread", "-j", "2",
                     "--examples", "3", "--only", "layer-jacobian.affine", "--only",
                     "loss-gradient.squared-error", "-q")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "conformant: 2 checks of 2 results, none violated"
    assert "backend 'leaves-a-thread' left 1 non-daemon thread ('backend-sleeper') " \
        "running; its worker process will exit without waiting for it" in \
        result.stderr


def test_the_command_line_exits_without_waiting_for_threads_the_backend_left(
        backends: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--backend", "hostile:leaves_a_thread",
         "--examples", "3", "--only", "layer-jacobian.affine", "-q"], cwd=backends,
        env=environment(backends), capture_output=True, text=True, timeout=TIMEOUT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "conformant: 1 check of 1 result, none violated"
    assert result.stderr.strip() == (
        "python -m conformance: not waiting for 1 non-daemon thread "
        "('backend-sleeper') the backend left running; exiting with status 0")


def test_the_exit_status_is_kept_when_no_thread_is_left(backends: Path) -> None:
    (backends / "plain.py").write_text(
        "import sys\n"
        "from conformance.runner import exit_without_waiting_for_backend_threads\n"
        "sys.exit(exit_without_waiting_for_backend_threads(3))\n")

    result = subprocess.run([sys.executable, "plain.py"], cwd=backends,
                            env=environment(backends), capture_output=True,
                            text=True, timeout=TIMEOUT)

    assert (result.returncode, result.stderr) == (3, "")


def test_under_pytest_a_backend_calling_sys_exit_fails_each_check_in_a_few_lines(
        backends: Path) -> None:
    env = environment(backends)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.pytest_plugin",
         "--pyargs", "conformance", "--backend", "hostile:exits",
         "--conformance-examples", "3", "-p", "no:cacheprovider", "-q",
         "-k", "total-derivative or gradient-product"], cwd=backends, env=env,
        capture_output=True, text=True, timeout=TIMEOUT)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed, 13 deselected" in output
    assert "BACKEND ERROR: gradient-product on backend 'exits'" in output
    assert ("gradient-product: backend 'exits' called sys.exit(0) on network "
            "1-1 identity squared_error, batch 1") in output
    assert "Traceback" not in output
    assert len(output.splitlines()) < 120


def test_standard_output_closed_by_the_backend_is_opened_again_for_the_verdict(
        backends: Path) -> None:
    result = run_cli(backends, "--backend", "hostile:closes_stdout", "--examples",
                     "3", "--only", "layer-jacobian.affine", "-q")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "conformant: 1 check of 1 result, none violated"
    assert "Traceback" not in result.stderr
