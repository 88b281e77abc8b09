"""The mygrad adapter against the mpmath oracle, capability by capability.

The checks every adapter shares are in ``adapter_contract.py``; here are
mygrad's reverse-mode capabilities and its care for the caller's arrays.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("mygrad")

from impl.adapters.mygrad import MygradBackend

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract", Path(__file__).with_name("adapter_contract.py"))
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)


@pytest.fixture(scope="module")
def backend() -> MygradBackend:
    return MygradBackend()


class TestMygradAdapter(contract.JacobianContract):
    backend_class = MygradBackend
    capabilities = frozenset({"input_jacobian", "parameter_jacobian", "vjp"})
    library_modules = ("mygrad",)
    install_message = ("the mygrad backend needs MyGrad, which is not installed; "
                       "install it with: pip install 'backprop-spec[mygrad]'")


def test_mygrad_leaves_the_callers_arrays_writeable(backend: MygradBackend) -> None:
    # Arrange: MyGrad locks the arrays of a live graph; the adapter copies.
    network = contract.NETWORKS[0]
    parameters, inputs, targets = contract.case(network, 0)

    # Act
    backend.loss_and_gradients(network, parameters, inputs, targets)
    backend.vjp(network, parameters, inputs[0], np.ones(network.widths[-1]))

    # Assert
    assert all(array.flags.writeable for array in (
        *parameters.weights, *parameters.biases, inputs, targets))
