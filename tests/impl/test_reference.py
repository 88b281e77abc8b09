"""The numpy reference backend against the oracle, differences and hand counts.

Jacobian checks use central differences of a forward pass written in this
file in mpmath (40 digits, step 1e-15), independent of the backend and of
:mod:`spec.conventions`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, cast

import mpmath
import numpy as np
import numpy.typing as npt
import pytest

import impl
from spec import Activation, Loss, Network, Parameters

FloatArray = npt.NDArray[np.float64]

ACTIVATIONS = list(Activation)
LOSSES = list(Loss)


def _random_case(seed: int) -> tuple[Network, Parameters, FloatArray, FloatArray]:
    """A random network of depth 1-4, widths 1-5, batch 1-4."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 5))
    widths = tuple(int(w) for w in rng.integers(1, 6, depth + 1))
    activations = tuple(ACTIVATIONS[int(i)] for i in
                        rng.integers(0, len(ACTIVATIONS), depth))
    loss = LOSSES[seed % 2]
    if loss is Loss.SOFTMAX_CROSS_ENTROPY and widths[-1] == 1:
        widths = widths[:-1] + (3,)
    network = Network(widths, activations, loss)
    weights = tuple(rng.standard_normal(network.weight_shape(ell))
                    for ell in range(1, depth + 1))
    biases = tuple(0.5 * rng.standard_normal(widths[ell]) for ell in range(1, depth + 1))
    batch = int(rng.integers(1, 5))
    inputs = rng.standard_normal((batch, widths[0]))
    targets = (rng.uniform(0.0, 1.0, (batch, widths[-1]))
               if loss is Loss.SOFTMAX_CROSS_ENTROPY
               else rng.standard_normal((batch, widths[-1])))
    return network, Parameters(weights, biases), inputs, targets


def _random_parameters(network: Network, rng: np.random.Generator, *,
                       weight_scale: float = 1.0,
                       bias_scale: float = 1.0) -> Parameters:
    """Unit-normal weights, then biases, each scaled; drawn in that order."""
    return Parameters(
        tuple(weight_scale * rng.standard_normal(network.weight_shape(ell))
              for ell in range(1, network.depth + 1)),
        tuple(bias_scale * rng.standard_normal(network.widths[ell])
              for ell in range(1, network.depth + 1)))


def _assert_relatively_close(actual: FloatArray, expected: FloatArray,
                             relative: float) -> None:
    """max |actual - expected| <= relative * max |expected| (normwise)."""
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    gap = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert gap <= relative * scale, (gap, scale)


@pytest.mark.parametrize("seed", range(24))
def test_reference_agrees_with_the_oracle_on_random_networks(seed: int) -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(seed)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, parameters, inputs,
                                                        targets)

    # Assert
    assert abs(answer.loss - expected.loss) <= 1e-12 * abs(expected.loss)
    for ell in range(network.depth):
        assert answer.gradients.weights[ell].shape == network.weight_shape(ell + 1)
        assert answer.gradients.biases[ell].shape == (network.widths[ell + 1],)
        _assert_relatively_close(answer.gradients.weights[ell],
                                 expected.gradients.weights[ell], 1e-12)
        _assert_relatively_close(answer.gradients.biases[ell],
                                 expected.gradients.biases[ell], 1e-12)


def test_random_cases_cover_every_activation_and_loss() -> None:
    # Arrange
    cases = [_random_case(seed) for seed in range(24)]

    # Act
    activations = {a for network, *_ in cases for a in network.activations}
    losses = {network.loss for network, *_ in cases}

    # Assert
    assert activations == set(Activation)
    assert losses == set(Loss)


# An independent network map in mpmath, for central differences.

def _mp_sigma(activation: Activation, z: Any) -> Any:
    name = activation.value
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1 / (1 + mpmath.exp(-z))
    if name == "tanh":
        return mpmath.sinh(z) / mpmath.cosh(z)
    if name == "relu":
        return z if z > 0 else 0 * z
    if name == "leaky_relu":
        return z if z > 0 else z / 100
    if name == "softplus":
        return mpmath.log(1 + mpmath.exp(z))
    return z if z > 0 else mpmath.exp(z) - 1


def _mp_network(network: Network, flat: Sequence[Any], x: Sequence[Any]) -> list[Any]:
    """The output a_L for parameters listed as vec W_1, b_1, vec W_2, b_2, ..."""
    a = list(x)
    at = 0
    for ell in range(1, network.depth + 1):
        m, n = network.weight_shape(ell)
        W = [[flat[at + i + j * m] for j in range(n)] for i in range(m)]
        at += m * n
        b = flat[at:at + m]
        at += m
        a = [_mp_sigma(network.activations[ell - 1],
                       sum((w * v for w, v in zip(W[i], a)), mpmath.mpf(0)) + b[i])
             for i in range(m)]
    return a


def _flat(parameters: Parameters) -> list[Any]:
    values: list[Any] = []
    for W, b in zip(parameters.weights, parameters.biases):
        for j in range(W.shape[1]):
            values.extend(mpmath.mpf(float(W[i, j])) for i in range(W.shape[0]))
        values.extend(mpmath.mpf(float(v)) for v in b)
    return values


def _difference_jacobian(network: Network, parameters: Parameters, x: FloatArray,
                         wrt: str) -> FloatArray:
    """Central differences at 40 digits, step 1e-15; columns in the convention."""
    with mpmath.workdps(40):
        h = mpmath.mpf("1e-15")
        theta = _flat(parameters)
        point = [mpmath.mpf(float(v)) for v in x]
        varied = point if wrt == "input" else theta
        columns = []
        for j in range(len(varied)):
            up, down = list(varied), list(varied)
            up[j] += h
            down[j] -= h
            if wrt == "input":
                f_up, f_down = (_mp_network(network, theta, up),
                                _mp_network(network, theta, down))
            else:
                f_up, f_down = (_mp_network(network, up, point),
                                _mp_network(network, down, point))
            columns.append([float((u - d) / (2 * h)) for u, d in zip(f_up, f_down)])
    return np.array(columns, dtype=np.float64).T


JACOBIAN_NETWORKS = [
    Network((3, 4, 2), (Activation.TANH, Activation.SIGMOID), Loss.SQUARED_ERROR),
    Network((2, 3, 3, 2), (Activation.RELU, Activation.ELU, Activation.SOFTPLUS),
            Loss.SQUARED_ERROR),
    Network((3, 2, 3), (Activation.LEAKY_RELU, Activation.IDENTITY),
            Loss.SOFTMAX_CROSS_ENTROPY),
]


def _jacobian_case(index: int) -> tuple[Network, Parameters, FloatArray]:
    network = JACOBIAN_NETWORKS[index]
    rng = np.random.default_rng(100 + index)
    parameters = _random_parameters(network, rng, bias_scale=0.3)
    return network, parameters, rng.standard_normal(network.widths[0])


@pytest.mark.parametrize("index", range(len(JACOBIAN_NETWORKS)))
def test_reference_input_jacobian_agrees_with_central_differences(index: int) -> None:
    # Arrange
    network, parameters, x = _jacobian_case(index)
    expected = _difference_jacobian(network, parameters, x, "input")

    # Act
    J = impl.ReferenceBackend().input_jacobian(network, parameters, x)

    # Assert
    assert J.shape == (network.widths[-1], network.widths[0])
    _assert_relatively_close(J, expected, 1e-12)


@pytest.mark.parametrize("index", range(len(JACOBIAN_NETWORKS)))
def test_reference_parameter_jacobian_agrees_with_central_differences(
        index: int) -> None:
    # Arrange
    network, parameters, x = _jacobian_case(index)
    expected = _difference_jacobian(network, parameters, x, "parameters")

    # Act
    J = impl.ReferenceBackend().parameter_jacobian(network, parameters, x)

    # Assert
    assert J.shape == expected.shape
    _assert_relatively_close(J, expected, 1e-12)


@pytest.mark.parametrize("index", range(len(JACOBIAN_NETWORKS)))
def test_reference_vjp_and_jvp_agree_with_central_differences(index: int) -> None:
    # Arrange
    network, parameters, x = _jacobian_case(index)
    J = _difference_jacobian(network, parameters, x, "input")
    rng = np.random.default_rng(7)
    u = rng.standard_normal(network.widths[-1])
    v = rng.standard_normal(network.widths[0])
    backend = impl.ReferenceBackend()

    # Act
    vjp = backend.vjp(network, parameters, x, u)
    jvp = backend.jvp(network, parameters, x, v)

    # Assert
    assert vjp.shape == (network.widths[0],)
    assert jvp.shape == (network.widths[-1],)
    _assert_relatively_close(vjp, u @ J, 1e-12)
    _assert_relatively_close(jvp, J @ v, 1e-12)


@pytest.mark.parametrize("index", range(len(JACOBIAN_NETWORKS)))
def test_reference_forward_mode_input_jacobian_agrees_with_central_differences(
        index: int) -> None:
    # Arrange
    network, parameters, x = _jacobian_case(index)
    expected = _difference_jacobian(network, parameters, x, "input")

    # Act
    J = impl.ReferenceBackend().input_jacobian_forward(network, parameters, x)

    # Assert
    assert J.shape == (network.widths[-1], network.widths[0])
    _assert_relatively_close(J, expected, 1e-12)


def _difference_layer_jacobians(network: Network, parameters: Parameters,
                                x: FloatArray) -> list[FloatArray]:
    """Central differences of each layer map a_{l-1} -> a_l at its own input."""
    theta = _flat(parameters)
    result = []
    with mpmath.workdps(40):
        h = mpmath.mpf("1e-15")
        a = [mpmath.mpf(float(v)) for v in x]
        at = 0
        for ell in range(1, network.depth + 1):
            m, n = network.weight_shape(ell)
            size = m * n + m
            layer = Network((n, m), (network.activations[ell - 1],), network.loss)
            own = theta[at:at + size]
            at += size
            columns = []
            for j in range(n):
                up = [v + h if k == j else v for k, v in enumerate(a)]
                down = [v - h if k == j else v for k, v in enumerate(a)]
                columns.append([float((u - d) / (2 * h)) for u, d in
                                zip(_mp_network(layer, own, up),
                                    _mp_network(layer, own, down))])
            result.append(np.array(columns, dtype=np.float64).T)
            a = _mp_network(layer, own, a)
    return result


@pytest.mark.parametrize("index", range(len(JACOBIAN_NETWORKS)))
def test_reference_layer_jacobians_agree_with_central_differences_of_each_layer(
        index: int) -> None:
    # Arrange
    network, parameters, x = _jacobian_case(index)
    expected = _difference_layer_jacobians(network, parameters, x)

    # Act
    layers = impl.ReferenceBackend().layer_jacobians(network, parameters, x)

    # Assert
    assert len(layers) == network.depth
    for ell, (J, want) in enumerate(zip(layers, expected), 1):
        assert J.shape == (network.widths[ell], network.widths[ell - 1])
        _assert_relatively_close(J, want, 1e-12)


def test_layer_jacobians_multiply_to_the_input_jacobian() -> None:
    # Arrange
    network, parameters, x = _jacobian_case(1)
    backend = impl.ReferenceBackend()
    layers = backend.layer_jacobians(network, parameters, x)

    # Act
    product = layers[2] @ layers[1] @ layers[0]

    # Assert
    _assert_relatively_close(product, backend.input_jacobian(network, parameters, x),
                             1e-14)


def test_parameter_jacobian_columns_stack_the_columns_of_w() -> None:
    # Arrange: a = W x + b with W = [[1, 2], [3, 4]], x = (5, 7). Columns are
    # W[0,0], W[1,0], W[0,1], W[1,1], b[0], b[1]; da_0/dW[0,1] = x_1 = 7 sits in
    # column 2, and column 1 is W[1,0], on which a_0 does not depend.
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                            (np.array([0.0, 0.0]),))

    # Act
    J = impl.ReferenceBackend().parameter_jacobian(network, parameters,
                                                   np.array([5.0, 7.0]))

    # Assert
    assert J[0, 2] == 7.0
    assert J[0, 1] == 0.0
    assert J[1, 1] == 5.0
    assert J.tolist() == [[5.0, 0.0, 7.0, 0.0, 1.0, 0.0],
                          [0.0, 5.0, 0.0, 7.0, 0.0, 1.0]]


def test_parameter_jacobian_puts_b1_before_vec_w2() -> None:
    # Arrange: a_1 = 2 * 11 + 3 = 25, a_2 = 5 a_1 + 7. Derivatives of a_2:
    # W_1: 5 * 11 = 55, b_1: 5, W_2: a_1 = 25, b_2: 1.
    network = Network((1, 1, 1), (Activation.IDENTITY, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[2.0]]), np.array([[5.0]])),
                            (np.array([3.0]), np.array([7.0])))

    # Act
    J = impl.ReferenceBackend().parameter_jacobian(network, parameters,
                                                   np.array([11.0]))

    # Assert
    assert J.tolist() == [[55.0, 5.0, 25.0, 1.0]]


def test_operation_counter_counts_the_forward_and_backward_pass_by_hand() -> None:
    # Arrange: widths 2-3-1, one example.
    # Forward: layer 1 multiply-adds 3*2 = 6, z and a 3 + 3; layer 2: 3 + 1 + 1;
    # the example loss 1: total 18.
    # Backward: layer 2 delta 1, dW_2 = delta^T a_1 1*1*3 = 3, the cotangent
    # delta W_2 1*1*3 = 3; layer 1 delta 3, dW_1 3*1*2 = 6: total 16.
    network = Network((2, 3, 1), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.ones((3, 2)), np.ones((1, 3))),
                            (np.zeros(3), np.zeros(1)))
    counter = impl.OperationCounter()

    # Act
    impl.ReferenceBackend(counter=counter).loss_and_gradients(
        network, parameters, np.array([[0.1, 0.2]]), np.array([[0.0]]))

    # Assert
    assert (counter.forward, counter.backward) == (18, 16)
    assert counter.total == 34


def test_loss_alone_counts_only_the_forward_pass_by_hand() -> None:
    # Arrange: the network of the test above; the forward pass counts 18.
    # Every hidden unit has z = 0.1 + 0.2 = 0.3, so a_2 = 3 tanh(0.3) and the
    # loss against 0 is (3 tanh 0.3)^2 / 2.
    network = Network((2, 3, 1), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.ones((3, 2)), np.ones((1, 3))),
                            (np.zeros(3), np.zeros(1)))
    counter = impl.OperationCounter()

    # Act
    loss = impl.ReferenceBackend(counter=counter).loss(
        network, parameters, np.array([[0.1, 0.2]]), np.array([[0.0]]))

    # Assert
    assert (counter.forward, counter.backward) == (18, 0)
    assert abs(loss - 4.5 * math.tanh(0.3) ** 2) <= 1e-15


def test_reference_takes_the_left_derivative_at_a_relu_kink() -> None:
    # Arrange: z = 1 * 1 - 1 = 0 exactly; relu'(0) = 0 by the left derivative,
    # so nothing flows to the layer's parameters.
    network = Network((1, 1), (Activation.RELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([-1.0]),))

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(
        network, parameters, np.array([[1.0]]), np.array([[2.0]]))

    # Assert
    assert answer.loss == 2.0
    assert answer.gradients.weights[0].tolist() == [[0.0]]
    assert answer.gradients.biases[0].tolist() == [0.0]


def test_reference_stays_finite_and_accurate_at_extreme_pre_activations() -> None:
    # Arrange: z = +-800 would overflow exp() in a naive sigmoid or softplus;
    # the oracle gives the exact values.
    network = Network((1, 3, 2), (Activation.SIGMOID, Activation.SOFTPLUS),
                      Loss.SOFTMAX_CROSS_ENTROPY)
    parameters = Parameters((np.array([[800.0], [-800.0], [3.0]]),
                             np.array([[1.0, 1.0, 30.0], [-1.0, 2.0, -30.0]])),
                            (np.zeros(3), np.array([0.0, 1.0])))
    inputs = np.array([[1.0], [-1.0]])
    targets = np.array([[0.2, 0.5], [1.0, 0.0]])
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, parameters, inputs,
                                                        targets)

    # Assert
    assert np.isfinite(answer.loss)
    assert abs(answer.loss - expected.loss) <= 1e-12 * abs(expected.loss)
    for ell in range(2):
        _assert_relatively_close(answer.gradients.weights[ell],
                                 expected.gradients.weights[ell], 1e-12)
        _assert_relatively_close(answer.gradients.biases[ell],
                                 expected.gradients.biases[ell], 1e-12)


def test_reference_computes_in_float32_when_given_float32_arrays() -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(5)
    single = Parameters(tuple(W.astype(np.float32) for W in parameters.weights),
                        tuple(b.astype(np.float32) for b in parameters.biases))
    # The protocol's FloatArray names float64; float32 runs pass float32 arrays.
    x32 = cast(FloatArray, inputs.astype(np.float32))
    y32 = cast(FloatArray, targets.astype(np.float32))
    expected = impl.MpmathBackend().loss_and_gradients(network, single, x32, y32)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, single, x32, y32)

    # Assert
    assert abs(answer.loss - expected.loss) <= 1e-5 * abs(expected.loss)
    for ell in range(network.depth):
        assert answer.gradients.weights[ell].dtype == np.float32
        assert answer.gradients.biases[ell].dtype == np.float32
        _assert_relatively_close(answer.gradients.weights[ell].astype(np.float64),
                                 expected.gradients.weights[ell], 1e-5)


def test_reference_leaves_the_callers_arrays_unchanged() -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(3)
    before = parameters.copy()
    inputs_before, targets_before = inputs.copy(), targets.copy()

    # Act
    impl.ReferenceBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    for W, W0, b, b0 in zip(parameters.weights, before.weights, parameters.biases,
                            before.biases):
        assert np.array_equal(W, W0) and np.array_equal(b, b0)
    assert np.array_equal(inputs, inputs_before)
    assert np.array_equal(targets, targets_before)


def _float32_tolerance(depth: int) -> float:
    """Normwise relative error allowed in float32: a few hundred units of
    float32 roundoff per layer, far above the rounding of these small
    networks and far below any wrong formula (a sign or a missing factor
    errs by order 1)."""
    return 256 * depth * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_reference_computes_every_activation_and_loss_in_float32(
        activation: Activation, loss: Loss) -> None:
    # Arrange: float32 numbers throughout; the oracle takes their exact values.
    network = Network((3, 4, 4, 3), (activation, activation, Activation.IDENTITY),
                      loss)
    rng = np.random.default_rng(11)
    parameters = Parameters(
        tuple(rng.standard_normal(network.weight_shape(ell)).astype(np.float32)
              for ell in (1, 2, 3)),
        tuple((0.5 * rng.standard_normal(network.widths[ell])).astype(np.float32)
              for ell in (1, 2, 3)))
    inputs = cast(FloatArray, rng.standard_normal((5, 3)).astype(np.float32))
    targets = cast(FloatArray, rng.uniform(0.0, 1.0, (5, 3)).astype(np.float32))
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, parameters, inputs,
                                                        targets)

    # Assert
    tolerance = _float32_tolerance(network.depth)
    assert abs(answer.loss - expected.loss) <= tolerance * abs(expected.loss)
    for ell in range(network.depth):
        for got, want in ((answer.gradients.weights[ell],
                           expected.gradients.weights[ell]),
                          (answer.gradients.biases[ell],
                           expected.gradients.biases[ell])):
            assert got.dtype == np.float32
            _assert_relatively_close(got.astype(np.float64), want, tolerance)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reference_matches_softmax_cross_entropy_worked_by_hand(
        dtype: type[np.floating]) -> None:
    # Arrange: a = x (W = I, b = 0) with x = (0, ln 3), so softmax(a) = (1/4, 3/4);
    # the target (1, 0) gives loss -ln(1/4) = ln 4, dL/db = p - y = (-3/4, 3/4)
    # and dL/dW = (p - y) x^T, whose first column is 0 and second +-(3/4) ln 3.
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SOFTMAX_CROSS_ENTROPY)
    parameters = Parameters((np.eye(2, dtype=dtype),), (np.zeros(2, dtype=dtype),))
    inputs = cast(FloatArray, np.array([[0.0, np.log(3.0)]], dtype=dtype))
    targets = cast(FloatArray, np.array([[1.0, 0.0]], dtype=dtype))
    units = 8 * float(np.finfo(dtype).eps)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, parameters, inputs,
                                                        targets)

    # Assert
    assert abs(answer.loss - np.log(4.0)) <= units * np.log(4.0)
    _assert_relatively_close(answer.gradients.biases[0].astype(np.float64),
                             np.array([-0.75, 0.75]), units)
    third = 0.75 * np.log(3.0)
    _assert_relatively_close(answer.gradients.weights[0].astype(np.float64),
                             np.array([[0.0, -third], [0.0, third]]), units)
    assert answer.gradients.weights[0].dtype == dtype


@pytest.mark.parametrize("seed", range(8))
def test_reference_loss_alone_agrees_with_the_oracle(seed: int) -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(seed)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    loss = impl.ReferenceBackend().loss(network, parameters, inputs, targets)

    # Assert
    assert abs(loss - expected.loss) <= 1e-12 * abs(expected.loss)


def test_reference_follows_a_wider_bias_dtype_as_numpy_would() -> None:
    # Arrange: float32 inputs and weights with float64 biases; a @ W.T + b is
    # float64, and so is everything computed from it.
    network, parameters, inputs, targets = _random_case(2)
    mixed = Parameters(tuple(W.astype(np.float32) for W in parameters.weights),
                       parameters.biases)
    x32 = cast(FloatArray, inputs.astype(np.float32))
    expected = impl.MpmathBackend().loss_and_gradients(network, mixed, x32, targets)

    # Act
    answer = impl.ReferenceBackend().loss_and_gradients(network, mixed, x32, targets)

    # Assert
    for ell in range(network.depth):
        assert answer.gradients.weights[ell].dtype == np.float64
        assert answer.gradients.biases[ell].dtype == np.float64
        _assert_relatively_close(answer.gradients.weights[ell],
                                 expected.gradients.weights[ell],
                                 _float32_tolerance(network.depth))


IN_PLACE_NETWORKS = [
    Network((3, 4, 4, 2), (Activation.RELU, Activation.TANH, Activation.IDENTITY),
            Loss.SOFTMAX_CROSS_ENTROPY),
    Network((3, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR),
]
"""Networks whose activations the backend computes over its own arrays."""


@pytest.mark.parametrize("network", IN_PLACE_NETWORKS,
                         ids=lambda n: n.describe().replace(" ", "_"))
def test_reference_leaves_the_callers_arrays_unchanged_by_in_place_layers(
        network: Network) -> None:
    # Arrange
    rng = np.random.default_rng(4)
    parameters = _random_parameters(network, rng)
    inputs = rng.standard_normal((3, network.widths[0]))
    targets = rng.uniform(0.0, 1.0, (3, network.widths[-1]))
    before = parameters.copy()
    inputs_before, targets_before = inputs.copy(), targets.copy()
    backend = impl.ReferenceBackend()

    # Act
    backend.loss_and_gradients(network, parameters, inputs, targets)
    backend.loss(network, parameters, inputs, targets)

    # Assert
    for W, W0, b, b0 in zip(parameters.weights, before.weights, parameters.biases,
                            before.biases):
        assert np.array_equal(W, W0) and np.array_equal(b, b0)
    assert np.array_equal(inputs, inputs_before)
    assert np.array_equal(targets, targets_before)


@pytest.mark.parametrize("network", IN_PLACE_NETWORKS,
                         ids=lambda n: n.describe().replace(" ", "_"))
def test_reference_answers_are_not_overwritten_by_a_later_call(
        network: Network) -> None:
    # Arrange
    rng = np.random.default_rng(5)
    parameters = _random_parameters(network, rng)
    backend = impl.ReferenceBackend()
    first = backend.loss_and_gradients(
        network, parameters, rng.standard_normal((3, network.widths[0])),
        rng.uniform(0.0, 1.0, (3, network.widths[-1])))
    kept = first.gradients.copy()

    # Act
    backend.loss_and_gradients(network, parameters,
                               rng.standard_normal((3, network.widths[0])),
                               rng.uniform(0.0, 1.0, (3, network.widths[-1])))

    # Assert
    for got, want in zip(first.gradients.weights + first.gradients.biases,
                         kept.weights + kept.biases):
        assert np.array_equal(got, want)


def test_reference_gives_the_oracles_answers_from_two_threads_at_once() -> None:
    # Arrange: each thread reuses its own intermediate arrays; were they
    # shared, one thread's forward pass would overwrite the other's.
    network = Network((32, 64, 64, 4), (Activation.RELU, Activation.TANH,
                                        Activation.IDENTITY),
                      Loss.SOFTMAX_CROSS_ENTROPY)
    rng = np.random.default_rng(6)
    parameters = _random_parameters(network, rng, weight_scale=1 / 8)
    inputs = rng.standard_normal((64, 32))
    targets = np.eye(4)[rng.integers(0, 4, 64)]
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)
    backend = impl.ReferenceBackend()
    start = threading.Barrier(2)
    answers: list[list[Any]] = [[], []]

    def work(slot: int) -> None:
        start.wait()
        for _ in range(100):
            answers[slot].append(backend.loss_and_gradients(network, parameters,
                                                            inputs, targets))

    # Act
    threads = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Assert
    assert [len(a) for a in answers] == [100, 100]
    for answer in answers[0] + answers[1]:
        assert abs(answer.loss - expected.loss) <= 1e-12 * abs(expected.loss)
        for got, want in zip(answer.gradients.weights, expected.gradients.weights):
            _assert_relatively_close(got, want, 1e-12)


CAPABILITY_METHODS = {
    "input_jacobian": "input_jacobian",
    "parameter_jacobian": "parameter_jacobian",
    "vjp": "vjp",
    "jvp": "jvp",
    "forward_jacobian": "input_jacobian_forward",
    "layer_jacobians": "layer_jacobians",
}
"""Each capability's method, as impl._protocol.Capability documents it."""


def test_reference_satisfies_the_backend_protocol() -> None:
    # Arrange
    backend = impl.ReferenceBackend()

    # Act
    is_backend = isinstance(backend, impl.Backend)

    # Assert
    assert is_backend
    assert backend.name == "reference"
    assert {c.value for c in backend.capabilities} >= {
        "input_jacobian", "parameter_jacobian", "vjp", "jvp"}


def test_reference_implements_every_capability_it_declares() -> None:
    # Arrange
    backend = impl.ReferenceBackend()

    # Act
    missing = sorted(CAPABILITY_METHODS[c.value] for c in backend.capabilities
                     if not callable(getattr(backend, CAPABILITY_METHODS[c.value],
                                             None)))

    # Assert
    assert missing == []
