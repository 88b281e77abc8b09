"""The tinygrad adapter against the mpmath oracle, on its CPU and PYTHON devices.

The checks every adapter shares are in ``adapter_contract.py``, run here on
each device; here are tinygrad's devices and its known mistakes in ELU.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("tinygrad")

from impl.adapters.tinygrad import TinygradBackend
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLoadError

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract", Path(__file__).with_name("adapter_contract.py"))
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)


DEVICES = [
    pytest.param("CPU", marks=pytest.mark.skipif(
        shutil.which("clang") is None,
        reason="tinygrad's CPU device compiles with clang, not installed here")),
    "PYTHON",
]
"""tinygrad's compiled CPU device (the default) and its Python emulator."""


@pytest.fixture(scope="module", params=DEVICES)
def backend(request: pytest.FixtureRequest) -> TinygradBackend:
    return TinygradBackend(device=request.param)


class TestTinygradAdapter(contract.JacobianContract):
    backend_class = TinygradBackend
    capabilities = frozenset({"input_jacobian", "parameter_jacobian", "vjp"})
    library_modules = ("tinygrad",)
    install_message = ("the tinygrad backend needs tinygrad, which is not installed; "
                       "install it with: pip install 'backprop-spec[tinygrad]'")


def test_tinygrad_names_a_device_it_cannot_compute_on() -> None:
    # Arrange
    device = "NOSUCHDEVICE"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        TinygradBackend(device=device)

    # Assert
    assert str(raised.value).startswith(
        "tinygrad could not compute on its NOSUCHDEVICE device: ")


def _one_elu_unit(z: float) -> tuple[Network, Parameters, contract.FloatArray,
                                     contract.FloatArray]:
    """One ELU unit at pre-activation ``z`` (W = 1, b = 0, x = z, y = 0)."""
    network = Network((1, 1), (Activation.ELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([0.0]),))
    return network, parameters, np.array([[z]]), np.array([[0.0]])


@pytest.mark.xfail(strict=True, reason=(
    "tinygrad writes elu(z) as relu(z) - relu(1 - exp(z)); both relus pass no "
    "gradient at 0, so elu'(0) comes out 0 although ELU with alpha 1 is "
    "differentiable there with slope 1"))
def test_tinygrad_elu_has_slope_one_at_zero(backend: TinygradBackend) -> None:
    # Arrange: z = 0, loss (elu(z) - y)^2 / 2 with y = -1: dL/dz = 1 * elu'(0).
    network, parameters, inputs, _ = _one_elu_unit(0.0)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs,
                                        np.array([[-1.0]]))

    # Assert
    assert answer.gradients.biases[0].tolist() == [1.0]


@pytest.mark.xfail(strict=True, reason=(
    "tinygrad's elu differentiates exp(z) also where relu masks it out; past "
    "z = 709.8 exp(z) overflows and 0 * inf makes the gradient NaN"))
def test_tinygrad_elu_gradient_is_finite_for_large_inputs(
        backend: TinygradBackend) -> None:
    # Arrange: z = 800, loss (800 - 0)^2 / 2, dL/db = 800.
    network, parameters, inputs, targets = _one_elu_unit(800.0)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert answer.gradients.biases[0].tolist() == [800.0]
