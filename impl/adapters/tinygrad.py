r"""The ``tinygrad`` backend: tinygrad's ``Tensor.gradient`` on its CPU device.

float64: tinygrad's ``CPU`` device computes in float64 (``dtypes.float64``
maps to C ``double``); creating the backend checks this with a probe
(:math:`1 + 2^{-40}` must survive) and raises :class:`BackendLoadError` on
a device that would round it away. The ``CPU`` device compiles its kernels
with ``clang`` at run time, so it needs the ``clang`` executable (Debian:
``apt-get install clang``); without it creation raises
:class:`BackendLoadError` naming that. ``TinygradBackend(device="PYTHON")``
selects tinygrad's emulator instead, which interprets the same kernels in
Python: no compiler, float64 too, slower per kernel but without the compile
time (on this project's small networks it is the faster of the two).

Conventions converted here, each applied alike to the loss and its gradient:

* The batch is one ``B x n_0`` tensor and layer :math:`\ell` computes
  ``a @ W.T + b``, so :math:`W_\ell` keeps the spec's ``n_l x n_{l-1}``
  shape and its gradient comes back in it.
* Squared error is written as :math:`\tfrac12\sum_i (a_i-y_i)^2` per example
  and averaged over the batch.
* Softmax cross-entropy is tinygrad's ``Tensor.cross_entropy`` with
  probability targets (same shape as the logits), ``reduction="mean"`` and
  no label smoothing: :math:`\frac1B\sum_k -\sum_i y_i
  (\operatorname{log\_softmax} a^{(k)})_i`; targets need not sum to one.
* Activations are tinygrad's ``Tensor`` methods: ``sigmoid``, ``tanh``,
  ``relu``, ``leaky_relu(0.01)``, ``softplus`` and ``elu(1.0)``. They are
  judged as tinygrad writes them: ``exp`` is ``exp2(z / ln 2)``, ``tanh`` is
  ``2 sigmoid(2z) - 1``, and ``elu`` is ``relu(z) - relu(1 - exp(z))``. At
  the kink ``relu`` takes the left derivative (0), ``leaky_relu`` the right
  one (1).
* The parameter Jacobian is assembled from one ``gradient`` call per output
  unit (seeded with a unit vector); each weight block is flattened
  column-major (vec stacks columns) and the blocks laid out
  :math:`\operatorname{vec}W_1, b_1, \dots`.

Capabilities: ``input_jacobian`` and ``parameter_jacobian`` (reverse mode,
one seeded ``Tensor.gradient`` per output unit) and ``vjp`` (one
``gradient`` seeded with ``u``). tinygrad differentiates in reverse mode
only, so no ``jvp``.

Arrays are computed in the dtype they arrive in (float64, or float32 in a
``--dtype float32`` run). tinygrad is imported when the backend is created.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE
from spec.errors import BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[tinygrad]'"

FLOAT64_PROBE_OFFSET = 2.0 ** -40
r"""Added to 1 by the float64 probe: representable in float64 (53-bit
significand) but rounded away in float32 (24 bits)."""


def _import_tinygrad() -> Any:
    """The ``tinygrad`` package, or :class:`BackendLoadError`."""
    try:
        tinygrad = importlib.import_module("tinygrad")
    except ImportError as error:
        raise BackendLoadError(
            "the tinygrad backend needs tinygrad, which is not installed; install "
            f"it with: {INSTALL_HINT}") from error
    logger.info("tinygrad loaded from %s", tinygrad.__file__)
    return tinygrad


def _probe_float64(tinygrad: Any, device: str) -> None:
    """Open ``device`` and check that it keeps float64, else BackendLoadError."""
    try:
        with tinygrad.Context(DEV=device):
            one = tinygrad.Tensor(np.ones(1, dtype=np.float64), device=device)
            result = np.asarray((one + FLOAT64_PROBE_OFFSET).numpy())
    except Exception as error:
        compiler = (" The CPU device compiles kernels with clang: install it "
                    "(Debian: apt-get install clang), or create "
                    "TinygradBackend(device='PYTHON') for tinygrad's Python "
                    "emulator, which needs no compiler." if device == "CPU" else "")
        raise BackendLoadError(
            f"tinygrad could not compute on its {device} device: "
            f"{type(error).__name__}: {error}.{compiler}") from error
    if result.dtype != np.float64 or result[0] != 1.0 + FLOAT64_PROBE_OFFSET:
        raise BackendLoadError(
            f"tinygrad's {device} device does not keep float64: 1 + 2**-40 came "
            f"back as {result[0]!r} of dtype {result.dtype}; use device='CPU'")


@dataclass
class TinygradBackend:
    """tinygrad reverse mode on one device (``CPU`` by default).

    Parameters
    ----------
    device
        tinygrad's device name: ``"CPU"`` (compiled with clang) or
        ``"PYTHON"`` (an interpreter, no compiler needed).
    """

    name: str = "tinygrad"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP}),
        repr=False)
    device: str = "CPU"
    tinygrad: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.tinygrad is None:
            self.tinygrad = _import_tinygrad()
        _probe_float64(self.tinygrad, self.device)

    # Building blocks: tensors, the activations, the network map, the loss.

    def _tensor(self, array: FloatArray, dtype: np.dtype[Any]) -> Any:
        return self.tinygrad.Tensor(np.array(array, dtype=dtype), device=self.device)

    def _activate(self, activation: Activation, z: Any) -> Any:
        if activation is Activation.IDENTITY:
            return z
        if activation is Activation.SIGMOID:
            return z.sigmoid()
        if activation is Activation.TANH:
            return z.tanh()
        if activation is Activation.RELU:
            return z.relu()
        if activation is Activation.LEAKY_RELU:
            return z.leaky_relu(float(LEAKY_RELU_SLOPE))
        if activation is Activation.SOFTPLUS:
            return z.softplus()
        if activation is Activation.ELU:
            return z.elu(float(ELU_ALPHA))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _network(self, network: Network, weights: list[Any], biases: list[Any],
                 inputs: Any) -> Any:
        a = inputs
        for W, b, activation in zip(weights, biases, network.activations):
            a = self._activate(activation, a @ W.T + b)
        return a

    def _loss(self, network: Network, output: Any, targets: Any) -> Any:
        if network.loss is Loss.SQUARED_ERROR:
            return (((output - targets) ** 2).sum(axis=1) * 0.5).mean()
        return output.cross_entropy(targets, reduction="mean")

    def _parameters(self, parameters: Parameters,
                    dtype: np.dtype[Any]) -> tuple[list[Any], list[Any]]:
        return ([self._tensor(W, dtype) for W in parameters.weights],
                [self._tensor(b, dtype) for b in parameters.biases])

    # The protocol.

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and ``Tensor.gradient`` of it in every parameter."""
        dtype = np.asarray(inputs).dtype
        with self.tinygrad.Context(DEV=self.device):
            weights, biases = self._parameters(parameters, dtype)
            output = self._network(network, weights, biases,
                                   self._tensor(inputs, dtype))
            loss = self._loss(network, output, self._tensor(targets, dtype))
            grads = loss.gradient(*weights, *biases)
            self.tinygrad.Tensor.realize(loss, *grads)
            L = network.depth
            return LossAndGradients(
                float(loss.item()),
                Parameters(tuple(_numpy(g, dtype) for g in grads[:L]),
                           tuple(_numpy(g, dtype) for g in grads[L:])))

    def _seeded_gradients(self, network: Network, parameters: Parameters,
                          x: FloatArray, seed: FloatArray) -> list[FloatArray]:
        r"""Gradients of :math:`s^\top a_L` in ``x``, then each ``W_l``, ``b_l``."""
        dtype = np.asarray(x).dtype
        with self.tinygrad.Context(DEV=self.device):
            weights, biases = self._parameters(parameters, dtype)
            x_tensor = self._tensor(x, dtype)
            output = self._network(network, weights, biases, x_tensor)
            interleaved = [t for W, b in zip(weights, biases) for t in (W, b)]
            grads = output.gradient(x_tensor, *interleaved,
                                    gradient=self._tensor(seed, dtype))
            self.tinygrad.Tensor.realize(*grads)
            return [_numpy(g, dtype) for g in grads]

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``n_L x n_0``, row ``i`` from the gradient seeded with ``e_i``."""
        dtype = np.asarray(x).dtype
        basis = np.eye(network.widths[-1], dtype=dtype)
        rows = [self._seeded_gradients(network, parameters, x, e)[0] for e in basis]
        return np.array(rows, dtype=dtype)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``n_L x P``, columns :math:`\operatorname{vec}W_1, b_1, \dots`."""
        dtype = np.asarray(x).dtype
        rows = []
        for e in np.eye(network.widths[-1], dtype=dtype):
            parts = self._seeded_gradients(network, parameters, x, e)[1:]
            rows.append(np.concatenate(_vec_blocks(parts)))
        return np.array(rows, dtype=dtype)

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """:math:`u^\\top J_x` from the gradient seeded with ``u``."""
        return self._seeded_gradients(network, parameters, x, u)[0]


def _numpy(tensor: Any, dtype: np.dtype[Any]) -> FloatArray:
    return np.array(tensor.numpy(), dtype=dtype)


def _vec_blocks(parts: Sequence[FloatArray]) -> list[FloatArray]:
    """``W_1, b_1, W_2, ...`` as ``vec W_1, b_1, vec W_2, ...``."""
    return [part.reshape(-1, order="F") if part.ndim == 2 else part
            for part in parts]
