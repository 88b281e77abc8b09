"""The autograd adapter against the mpmath oracle, capability by capability.

The checks every adapter shares are in ``adapter_contract.py``; here are
autograd's declared capabilities and its own behaviour at a kink.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("autograd")

from impl.adapters.autograd import AutogradBackend
from spec import Activation, Loss, Network, Parameters

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract", Path(__file__).with_name("adapter_contract.py"))
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)


@pytest.fixture(scope="module")
def backend() -> AutogradBackend:
    return AutogradBackend()


class TestAutogradAdapter(contract.LayerJacobianContract):
    backend_class = AutogradBackend
    # No forward_jacobian: autograd's forward mode has no JVP rule for
    # scipy.special.expit.
    capabilities = frozenset({"input_jacobian", "parameter_jacobian", "vjp", "jvp",
                              "layer_jacobians"})
    library_modules = ("autograd",)
    install_message = (
        "the autograd backend needs autograd (HIPS), which is not installed (or "
        "its scipy is missing); install it with: "
        "pip install 'backprop-spec[autograd]'")


def test_autograd_relu_splits_the_gradient_at_its_kink() -> None:
    # Arrange: z = 1 * 1 - 1 = 0; np.maximum(z, 0) ties, and autograd gives
    # each argument half the gradient: d loss / d b = (0 - 2) * 1/2 = -1.
    network = Network((1, 1), (Activation.RELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([-1.0]),))

    # Act
    answer = AutogradBackend().loss_and_gradients(
        network, parameters, np.array([[1.0]]), np.array([[2.0]]))

    # Assert
    assert answer.loss == 2.0
    assert answer.gradients.biases[0].tolist() == [-1.0]
