"""Loading backends by name or ``module:attribute``, and the errors that name why.

Modules loaded here are written by the tests into a temporary folder put on
``sys.path`` for the test only.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

import impl
from impl.adapters.torch import TorchBackend
from spec import Activation, Loss, LossAndGradients, Network, Parameters
from spec.errors import BackendLoadError

_serial = itertools.count()

ModuleWriter = Callable[[str], str]


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> \
        Iterator[ModuleWriter]:
    """Write ``source`` as a fresh module on sys.path; return its name."""
    folder = tmp_path
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(source: str) -> str:
        name = f"backend_under_test_{next(_serial)}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


ONE_UNIT = Network((1, 1), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
ONE_UNIT_PARAMETERS = Parameters((np.array([[2.0]]),), (np.array([1.0]),))


@pytest.mark.parametrize(("name", "kind"), [
    ("reference", impl.ReferenceBackend),
    ("jacobian-product", impl.JacobianProductBackend),
    ("mpmath", impl.MpmathBackend),
    ("torch", TorchBackend),
])
def test_built_in_names_load_their_backends(name: str, kind: type) -> None:
    # Arrange
    known = impl.builtin_backends()

    # Act
    backend = impl.load_backend(name)

    # Assert
    assert name in known
    assert isinstance(backend, kind)
    assert backend.name == name


def test_an_unknown_name_raises_a_load_error_listing_the_known_names() -> None:
    # Arrange
    name = "no-such-backend"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    message = str(raised.value)
    assert "'no-such-backend' is not a known backend" in message
    assert "reference" in message and "jacobian-product" in message
    assert "package.module:attribute" in message


def test_a_missing_module_raises_a_load_error_naming_the_module() -> None:
    # Arrange
    name = "no_such_module_for_backprop_tests:backend"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    message = str(raised.value)
    assert "cannot import module 'no_such_module_for_backprop_tests'" in message
    assert "PYTHONPATH" in message
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_a_missing_attribute_raises_a_load_error_naming_the_attribute() -> None:
    # Arrange
    name = "impl.reference:NoSuchBackend"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    assert "module 'impl.reference' has no attribute 'NoSuchBackend'" in \
        str(raised.value)


def test_an_empty_attribute_raises_a_load_error() -> None:
    # Arrange
    name = "impl.reference:"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    assert "has no attribute ''" in str(raised.value)


def test_an_attribute_that_is_not_a_backend_raises_a_load_error_naming_its_type(
        ) -> None:
    # Arrange: an int constant of the module.
    name = "impl.jacobian_product:MAX_MATRIX_ENTRIES"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    message = str(raised.value)
    assert "impl.jacobian_product:MAX_MATRIX_ENTRIES is a int, not a backend" in \
        message
    assert "loss_and_gradients" in message


@pytest.mark.parametrize("name", ["json:dumps", "math:sqrt"])
def test_a_function_that_cannot_take_a_backends_arguments_is_refused(name: str) -> None:
    # Arrange: both take a single positional argument, a backend four.

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(name)

    # Assert
    message = str(raised.value)
    assert f"{name} is a function that cannot be called with the four" in message
    assert "(network, parameters, inputs, targets)" in message


def test_a_module_that_fails_on_import_raises_a_load_error_with_the_cause(
        write_module: ModuleWriter) -> None:
    # Arrange
    module = write_module("raise RuntimeError('broken on purpose')\n")

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(f"{module}:backend")

    # Assert
    assert f"importing module '{module}' raised RuntimeError: broken on purpose" \
        in str(raised.value)


def test_a_module_that_exits_on_import_raises_a_load_error_instead_of_exiting(
        write_module: ModuleWriter) -> None:
    module = write_module("import sys\nsys.exit(5)\n")

    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(f"{module}:backend")

    assert str(raised.value) == (
        f"importing module '{module}' for backend '{module}:backend' called "
        "sys.exit(5); a backend module must not exit when imported (put its "
        "script part under if __name__ == '__main__':)")


def test_a_class_that_exits_when_created_raises_a_load_error(
        write_module: ModuleWriter) -> None:
    module = write_module("""
        import sys

        class Quits:
            def __init__(self):
                sys.exit("no")
    """)

    with pytest.raises(BackendLoadError, match=f"{module}:Quits is a class, but "
                       "creating it with no arguments raised SystemExit: no"):
        impl.load_backend(f"{module}:Quits")


def test_a_class_that_cannot_be_created_raises_a_load_error(
        write_module: ModuleWriter) -> None:
    # Arrange
    module = write_module("""
        class NeedsArguments:
            def __init__(self, size):
                self.size = size

            def loss_and_gradients(self, network, parameters, inputs, targets):
                raise AssertionError("never called")
    """)

    # Act
    with pytest.raises(BackendLoadError) as raised:
        impl.load_backend(f"{module}:NeedsArguments")

    # Assert
    message = str(raised.value)
    assert f"{module}:NeedsArguments is a class, but creating it with no " \
        "arguments raised TypeError" in message


def test_load_errors_are_import_errors_for_callers_that_do_not_know_ours() -> None:
    # Arrange
    name = "impl.reference:NoSuchBackend"

    # Act
    with pytest.raises(ImportError) as raised:
        impl.load_backend(name)

    # Assert
    assert isinstance(raised.value, BackendLoadError)


def test_a_plain_function_is_wrapped_into_a_function_backend(
        write_module: ModuleWriter) -> None:
    # Arrange: the hand gradients of a = w x + b, loss (a - y)^2 / 2.
    module = write_module("""
        import numpy as np

        def gradients(network, parameters, inputs, targets):
            w = parameters.weights[0][0, 0]
            b = parameters.biases[0][0]
            x, y = inputs[0, 0], targets[0, 0]
            r = w * x + b - y
            return 0.5 * r * r, [np.array([[r * x]])], [np.array([r])]
    """)

    # Act
    backend = impl.load_backend(f"{module}:gradients")
    answer = backend.loss_and_gradients(ONE_UNIT, ONE_UNIT_PARAMETERS,
                                        np.array([[3.0]]), np.array([[4.0]]))

    # Assert: a = 7, r = 3, loss 4.5, dW = 9, db = 3.
    assert isinstance(backend, impl.FunctionBackend)
    assert backend.name == f"{module}:gradients"
    assert backend.capabilities == frozenset()
    assert answer.loss == 4.5
    assert answer.gradients.weights[0].tolist() == [[9.0]]
    assert answer.gradients.biases[0].tolist() == [3.0]


def test_an_object_without_a_name_is_named_after_where_it_was_loaded_from(
        write_module: ModuleWriter) -> None:
    # Arrange
    module = write_module("""
        class Plain:
            def loss_and_gradients(self, network, parameters, inputs, targets):
                raise AssertionError("never called")

        backend = Plain()
    """)

    # Act
    backend = impl.load_backend(f"{module}:backend")

    # Assert
    assert backend.name == f"{module}:backend"
    assert backend.capabilities == frozenset()
    assert type(backend).__name__ == "Plain"


def test_a_class_is_loaded_as_an_instance_keeping_its_own_name() -> None:
    # Arrange
    name = "impl.reference:ReferenceBackend"

    # Act
    backend = impl.load_backend(name)

    # Assert
    assert isinstance(backend, impl.ReferenceBackend)
    assert backend.name == "reference"


def test_a_function_backend_passes_a_loss_and_gradients_answer_through() -> None:
    # Arrange
    expected = LossAndGradients(1.5, Parameters((np.zeros((1, 1)),), (np.zeros(1),)))
    backend = impl.FunctionBackend(lambda *arguments: expected, name="passthrough")

    # Act
    answer = backend.loss_and_gradients(ONE_UNIT, ONE_UNIT_PARAMETERS,
                                        np.ones((1, 1)), np.ones((1, 1)))

    # Assert
    assert answer is expected


def test_a_function_backend_rejects_an_answer_of_the_wrong_form() -> None:
    # Arrange
    backend = impl.FunctionBackend(lambda *arguments: [0.0, [], []], name="listy")

    # Act
    with pytest.raises(TypeError) as raised:
        backend.loss_and_gradients(ONE_UNIT, ONE_UNIT_PARAMETERS, np.ones((1, 1)),
                                   np.ones((1, 1)))

    # Assert
    message = str(raised.value)
    assert "listy returned list" in message
    assert "(loss, weight_gradients, bias_gradients)" in message


def test_the_function_backend_decorator_names_the_backend() -> None:
    # Arrange
    @impl.function_backend("hand-made")
    def backend(network: Network, parameters: Parameters, inputs: object,
                targets: object) -> tuple[float, list[object], list[object]]:
        return 2.0, [np.ones((1, 1))], [np.ones(1)]

    # Act
    answer = backend.loss_and_gradients(ONE_UNIT, ONE_UNIT_PARAMETERS,
                                        np.ones((1, 1)), np.ones((1, 1)))

    # Assert
    assert isinstance(backend, impl.FunctionBackend)
    assert backend.name == "hand-made"
    assert answer.loss == 2.0
    assert answer.gradients.weights[0].tolist() == [[1.0]]


def test_an_entry_point_adds_a_name_but_never_replaces_a_built_in(
        write_module: ModuleWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    module = write_module("""
        def gradients(network, parameters, inputs, targets):
            return 0.25, [p * 0 for p in parameters.weights], \\
                [p * 0 for p in parameters.biases]
    """)
    registered = [
        EntryPoint("plugged-in", f"{module}:gradients", "backprop_spec.backends"),
        EntryPoint("reference", f"{module}:gradients", "backprop_spec.backends"),
    ]

    def entry_points(group: str) -> list[EntryPoint]:
        return registered if group == "backprop_spec.backends" else []

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)

    # Act
    known = impl.builtin_backends()
    plugged = impl.load_backend("plugged-in")
    reference = impl.load_backend("reference")

    # Assert
    assert known["plugged-in"] == f"{module}:gradients"
    assert known["reference"] == "impl.reference:ReferenceBackend"
    assert plugged.name == "plugged-in"
    assert plugged.loss_and_gradients(ONE_UNIT, ONE_UNIT_PARAMETERS,
                                      np.ones((1, 1)), np.ones((1, 1))).loss == 0.25
    assert isinstance(reference, impl.ReferenceBackend)
