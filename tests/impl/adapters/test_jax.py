"""The jax adapter against the mpmath oracle, capability by capability.

The checks every adapter shares are in ``adapter_contract.py``; here are the
capabilities jax declares (all of them) and its known inaccuracy in tanh.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("jax")

from impl.adapters.jax import JaxBackend
from spec import Activation, Loss, Network, Parameters

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract", Path(__file__).with_name("adapter_contract.py"))
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)


@pytest.fixture(scope="module")
def backend() -> JaxBackend:
    return JaxBackend()


class TestJaxAdapter(contract.LayerJacobianContract):
    backend_class = JaxBackend
    capabilities = frozenset({"input_jacobian", "parameter_jacobian", "vjp", "jvp",
                              "forward_jacobian", "layer_jacobians"})
    library_modules = ("jax",)
    install_message = ("the jax backend needs JAX, which is not installed; install "
                       "it with: pip install 'backprop-spec[jax]'")


@pytest.mark.xfail(strict=True, reason=(
    "XLA's float64 tanh on the CPU is several ulps off near saturation and "
    "jax differentiates it as (1 - tanh z)(1 + tanh z) from that value, so "
    "tanh'(19) comes out about 12 times too large"))
def test_jax_tanh_derivative_is_accurate_in_saturation(backend: JaxBackend) -> None:
    # Arrange: one tanh unit, z = 19; the exact tanh'(19) = 1/cosh(19)^2.
    network = Network((1, 1), (Activation.TANH,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([0.0]),))
    inputs, targets = np.array([[19.0]]), np.array([[0.0]])

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    contract.assert_gradients_hold(network, parameters, inputs, targets, answer)
