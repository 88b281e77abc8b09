"""The pytest plugin: ``pytest --pyargs conformance --backend NAME``.

Every test runs pytest in a subprocess, in a fresh folder, loading the plugin
with ``-p``, with small backends written next to it: a sign-flipped copy of
the reference, one that overflows on large inputs and one that hangs.
"""

from __future__ import annotations

import os
from importlib.metadata import distributions
from pathlib import Path

import pytest

from conformance.runner import check_ids

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parents[2]

PLUGIN_MODULE = "conformance.pytest_plugin"

EXAMPLES = "3"
"""Examples per check: each run stays within a few seconds, and the wrong
backends below fail on any example."""

SUBPROCESS_TIMEOUT = 300
"""Seconds a pytest subprocess may take before the test fails as hung."""

BACKENDS = '''
import time

import numpy as np

from impl import ReferenceBackend
from impl._numeric import sigma as REFERENCE_SIGMA
from spec import LossAndGradients, Parameters

REFERENCE = ReferenceBackend()


class Flipped:
    """The reference's gradients with the wrong sign; no capabilities."""

    name = "flipped"
    capabilities = frozenset()

    def loss_and_gradients(self, network, parameters, inputs, targets):
        answer = REFERENCE.loss_and_gradients(network, parameters, inputs, targets)
        gradients = answer.gradients
        return LossAndGradients(answer.loss, Parameters(
            tuple(-W for W in gradients.weights), tuple(-b for b in gradients.biases)))


class Overflowing:
    """The reference, but an infinite loss wherever an exp of a pre-activation
    without a shift would overflow float64 (a sigmoid, tanh, softplus or ELU
    unit past 709.8)."""

    name = "overflowing"
    capabilities = frozenset()

    def loss_and_gradients(self, network, parameters, inputs, targets):
        answer = REFERENCE.loss_and_gradients(network, parameters, inputs, targets)
        a = inputs
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            z = a @ W.T + b
            if activation.value in ("sigmoid", "tanh", "softplus", "elu") and \
                    np.max(np.abs(z)) > 709.8:
                return LossAndGradients(float("inf"), answer.gradients)
            a = REFERENCE_SIGMA(activation, z)
        return answer


class Hanging:
    """Never answers within a short time limit."""

    name = "hanging"
    capabilities = frozenset()

    def loss_and_gradients(self, network, parameters, inputs, targets):
        time.sleep(60)


flipped, overflowing, hanging = Flipped(), Overflowing(), Hanging()
'''


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses import this repository and ``backends``.

    Installed plugins are not loaded (the plugin is, by ``-p``): the runs
    then start a second faster, as pytest does not rewrite the asserts of
    Hypothesis, and see only this plugin's output.
    """
    paths = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(backends=BACKENDS)
    return pytester


def run_checks(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``pytest --pyargs conformance`` with the plugin and a few examples."""
    return pytester.runpytest_subprocess(
        "-p", PLUGIN_MODULE, "--pyargs", "conformance", "--conformance-examples",
        EXAMPLES, "-p", "no:cacheprovider", *args, timeout=SUBPROCESS_TIMEOUT)


def installed_plugin_options() -> list[str]:
    """``-p`` loading the plugin beside the installed ones.

    Once an installed ``pytest11`` entry point names the module, pytest
    refuses to register it a second time under its module name, so it is
    then loaded by the entry point's name. The distributions are searched
    as pytest searches them: every one on the path, duplicates included.
    """
    for distribution in distributions():
        for entry in distribution.entry_points:
            if entry.group == "pytest11" and entry.value == PLUGIN_MODULE:
                return ["-p", entry.name]
    return ["-p", PLUGIN_MODULE]


def test_with_installed_plugins_reference_backend_passes_one_test_per_check(
    run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")

    result = run.runpytest_subprocess(
        *installed_plugin_options(), "--pyargs", "conformance", "--backend",
        "reference", "--conformance-examples", EXAMPLES, "-v", "-p",
        "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT)

    result.assert_outcomes(passed=len(check_ids()))
    result.stdout.fnmatch_lines([f"*checks.py::{check_id} PASSED*"
                                 for check_id in check_ids()])
    result.stdout.fnmatch_lines([("backprop-spec: backend 'reference' (reference), "
                                  f"{EXAMPLES} examples per check, seed 0, float64*")])


def test_wrong_backend_fails_naming_the_violated_result_with_a_reproducer(
    run: pytest.Pytester,
) -> None:
    result = run_checks(run, "--backend", "backends:flipped", "-k", "gradient-product")

    result.assert_outcomes(failed=1, deselected=len(check_ids()) - 1)
    result.stdout.fnmatch_lines([
        "*_ gradient-product on backends:flipped _*",
        (f"VIOLATED: gradient-product on backend 'flipped' (seed 0, {EXAMPLES} "
         "examples, float64)"),
        "== gradient-product: *",
        "gradient-product: *_gradient *expected *, got * bounds*",
        "minimal case: network *",
        "reproduce with:",
        "*print(judge('gradient-product', load_backend('backends:flipped'), case))",
        "FAILED *checks.py::gradient-product - Failed: VIOLATED*",
    ])
    assert "Traceback" not in result.stdout.str()
    assert "pytest_plugin.py" not in result.stdout.str()


def test_exitfirst_stops_at_the_first_failing_check(run: pytest.Pytester) -> None:
    result = run_checks(run, "--backend", "backends:flipped", "-x")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED *checks.py::total-derivative - *",
                                 "*stopping after 1 failures*"])


@pytest.mark.parametrize("in_package", [True, False])
def test_node_id_selects_one_check(run: pytest.Pytester, in_package: bool) -> None:
    node_id = ["--pyargs", "conformance.checks::gradient-product"] if in_package \
        else [f"{REPO_ROOT / 'conformance' / 'checks.py'}::gradient-product"]

    result = run.runpytest_subprocess(
        "-p", PLUGIN_MODULE, *node_id, "--backend", "reference",
        "--conformance-examples", EXAMPLES, "-v", "-p", "no:cacheprovider",
        timeout=SUBPROCESS_TIMEOUT)

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::gradient-product PASSED*"])


def test_check_needing_an_undeclared_capability_is_skipped_with_the_reason(
    run: pytest.Pytester,
) -> None:
    result = run_checks(run, "--backend", "backends:flipped", "-k", "chain-rule",
                        "-rs")

    result.assert_outcomes(skipped=1, deselected=len(check_ids()) - 1)
    result.stdout.fnmatch_lines([
        ("SKIPPED * *conformance/checks.py:*: chain-rule not applicable: the "
         "backend does not declare input_jacobian")])


@pytest.mark.parametrize(
    ("robustness", "outcomes", "shown"),
    [
        ("fail", {"failed": 1}, "OVERFLOWS: robustness on backend 'overflowing'*"),
        ("report", {"passed": 1, "warnings": 1},
         "*ConformanceWarning: reported only (--conformance-robustness report):"),
    ],
)
def test_overflow_fails_or_is_only_reported_as_robustness_says(
    run: pytest.Pytester, robustness: str, outcomes: dict[str, int], shown: str
) -> None:
    result = run_checks(run, "--backend", "backends:overflowing", "-k", "robustness",
                        "--conformance-robustness", robustness)

    result.assert_outcomes(deselected=len(check_ids()) - 1, **outcomes)
    result.stdout.fnmatch_lines([shown, "*returned loss = inf on *"])


def test_after_a_hang_the_remaining_checks_are_not_run(run: pytest.Pytester) -> None:
    result = run_checks(run, "--backend", "backends:hanging",
                        "--conformance-time-limit", "0.2",
                        "-k", "total-derivative or self-consistency")

    result.assert_outcomes(failed=2, deselected=len(check_ids()) - 2)
    result.stdout.fnmatch_lines([
        "BACKEND ERROR: total-derivative on backend 'hanging'*",
        "*did not answer within 0.2 s*",
        "self-consistency: not run, because *did not answer within 0.2 s*"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--backend", "nosuch"),
         "ERROR: --backend=nosuch: backend 'nosuch' is not a known backend*"),
        (("--backend", "nosuchmodule:backend"),
         "*cannot import module 'nosuchmodule' for backend*"),
        (("--backend", "reference", "--conformance-examples", "0"),
         "*argument --conformance-examples: expected at least 1, got 0"),
        (("--backend", "reference", "--conformance-dtype", "float16"),
         "*argument --conformance-dtype: invalid choice: 'float16'*"),
        (("--backend", "reference", "--conformance-oracle-digits", "10"),
         "*argument --conformance-oracle-digits: expected at least 20, got 10"),
        (("--backend", "reference", "--conformance-examples", "100001"),
         "*argument --conformance-examples: expected at most 100000 examples per "
         "check, got 100001"),
    ],
)
def test_unusable_backend_or_option_is_a_usage_error(
    run: pytest.Pytester, arguments: tuple[str, ...], message: str
) -> None:
    result = run_checks(run, *arguments)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_a_profile_unknown_to_the_environment_is_a_usage_error(
    run: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKPROP_SPEC_PROFILE", "bogus")

    result = run_checks(run, "--backend", "reference")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*BACKPROP_SPEC_PROFILE='bogus' is not a profile; "
                                 "choose one of dev, ci, thorough*"])


def test_without_backend_an_unrelated_run_is_left_alone(run: pytest.Pytester) -> None:
    run.makepyfile(test_unrelated="def test_unrelated():\n    assert True\n")

    result = run.runpytest_subprocess("-p", PLUGIN_MODULE, "-p", "no:cacheprovider",
                                      timeout=SUBPROCESS_TIMEOUT)

    result.assert_outcomes(passed=1)
    assert "backprop-spec" not in result.stdout.str()


def test_backend_without_the_package_collected_warns(run: pytest.Pytester) -> None:
    run.makepyfile(test_unrelated="def test_unrelated():\n    assert True\n")

    result = run.runpytest_subprocess("-p", PLUGIN_MODULE, "--backend", "reference",
                                      "-p", "no:cacheprovider",
                                      timeout=SUBPROCESS_TIMEOUT)

    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([("*--backend=reference was given but no conformance "
                                  "check was collected; add --pyargs conformance*")])


@pytest.mark.parametrize("with_backend", [False, True])
def test_repository_collection_holds_checks_only_with_backend(
    run: pytest.Pytester, with_backend: bool
) -> None:
    options = ["--backend", "reference"] if with_backend else []

    result = run.runpytest_subprocess(
        "-p", PLUGIN_MODULE, "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir",
        str(REPO_ROOT), "-p", "no:cacheprovider", "--collect-only", "-q",
        str(REPO_ROOT / "conformance"), *options, timeout=SUBPROCESS_TIMEOUT)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    collected = [line.removeprefix("conformance/checks.py::")
                 for line in result.stdout.lines
                 if line.startswith("conformance/checks.py::")]
    assert collected == (check_ids() if with_backend else [])
    assert "conformance/runner.py::conformance.runner.judge" in result.stdout.lines
