"""The conventions: network shapes, vec, exact activations, losses, forward pass."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from spec import Activation, Loss, Network, Parameters, unvec, vec
from spec.conventions import (
    example_loss,
    forward_exact,
    is_differentiable_at,
    sigma,
    sigma_prime,
    sigma_second,
    softmax,
)
from spec._verdict import to_exact


def test_vec_stacks_the_columns_of_a_matrix() -> None:
    # Arrange: W[i, j] goes to coordinate i + j m with m = 3 rows.
    W = np.array([[1, 2], [3, 4], [5, 6]])

    # Act
    stacked = vec(W)

    # Assert
    assert stacked.tolist() == [1, 3, 5, 2, 4, 6]
    assert stacked[1 + 1 * 3] == W[1, 1]


def test_unvec_inverts_vec() -> None:
    # Arrange
    W = np.arange(12.0).reshape(3, 4)

    # Act
    back = unvec(vec(W), (3, 4))

    # Assert
    assert np.array_equal(back, W)


def test_vec_of_a_product_is_the_kronecker_factor_times_vec_w() -> None:
    # Arrange: vec(W a) = (a^T (x) I_m) vec(W); W a = (1*5 + 2*7, 3*5 + 4*7).
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    a = np.array([5.0, 7.0])

    # Act
    product = np.kron(a[None, :], np.eye(2)) @ vec(W)

    # Assert
    assert product.tolist() == [19.0, 43.0]


def test_network_reports_depth_weight_shapes_and_a_one_line_description() -> None:
    # Arrange
    network = Network((3, 4, 2), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)

    # Act
    shapes = [network.weight_shape(1), network.weight_shape(2)]

    # Assert
    assert network.depth == 2
    assert shapes == [(4, 3), (2, 4)]
    assert network.describe() == "3-4-2 tanh,identity squared_error"


@pytest.mark.parametrize(("widths", "activations", "message"), [
    ((3,), (), "need at least n_0 and n_1"),
    ((3, 0), (Activation.TANH,), "every width must be >= 1"),
    ((3, 4, 2), (Activation.TANH,), "activations has 1 entries"),
])
def test_network_rejects_inconsistent_shapes_with_a_message(
        widths: tuple[int, ...], activations: tuple[Activation, ...],
        message: str) -> None:
    # Arrange
    loss = Loss.SQUARED_ERROR

    # Act
    with pytest.raises(ValueError) as raised:
        Network(widths, activations, loss)

    # Assert
    assert message in str(raised.value)


def test_parameters_copy_is_independent_of_the_original() -> None:
    # Arrange
    parameters = Parameters((np.ones((2, 2)),), (np.zeros(2),))

    # Act
    copied = parameters.copy()
    copied.weights[0][0, 0] = 5.0
    copied.biases[0][1] = 7.0

    # Assert
    assert parameters.weights[0][0, 0] == 1.0
    assert parameters.biases[0][1] == 0.0


@pytest.mark.parametrize(("activation", "z", "expected"), [
    (Activation.IDENTITY, "-1.5", "-1.5"),
    (Activation.SIGMOID, "0", "0.5"),
    (Activation.TANH, "0", "0"),
    (Activation.RELU, "-2", "0"),
    (Activation.RELU, "2", "2"),
    (Activation.LEAKY_RELU, "-2", "-0.02"),
    (Activation.ELU, "3", "3"),
])
def test_sigma_takes_hand_computed_values(activation: Activation, z: str,
                                          expected: str) -> None:
    # Arrange
    with mpmath.workdps(30):
        argument = mpmath.mpf(z)

        # Act
        value = sigma(activation, argument)

        # Assert
        assert abs(value - mpmath.mpf(expected)) < mpmath.mpf("1e-29")


def test_smooth_activations_take_their_closed_form_values() -> None:
    # Arrange
    with mpmath.workdps(30):
        one = mpmath.mpf(1)

        # Act
        values = (sigma(Activation.SIGMOID, one), sigma(Activation.SOFTPLUS, one),
                  sigma(Activation.ELU, -one), sigma(Activation.TANH, one))

        # Assert
        e = mpmath.e
        expected = (e / (e + 1), mpmath.log(1 + e), 1 / e - 1,
                    (e * e - 1) / (e * e + 1))
        for got, want in zip(values, expected):
            assert abs(got - want) < mpmath.mpf("1e-29")


@pytest.mark.parametrize("activation", list(Activation))
@pytest.mark.parametrize("z", ["-0.7", "1.3"])
def test_sigma_prime_is_the_derivative_of_sigma(activation: Activation,
                                                z: str) -> None:
    # Arrange: a central difference at 50 digits, step 1e-15.
    with mpmath.workdps(50):
        point, h = mpmath.mpf(z), mpmath.mpf("1e-15")
        expected = (sigma(activation, point + h) - sigma(activation, point - h)) / (2 * h)

        # Act
        derivative = sigma_prime(activation, point)

        # Assert
        assert abs(derivative - expected) < mpmath.mpf("1e-25")


@pytest.mark.parametrize("activation", list(Activation))
def test_sigma_second_is_the_derivative_of_sigma_prime(activation: Activation
                                                       ) -> None:
    # Arrange
    with mpmath.workdps(50):
        point, h = mpmath.mpf("-0.4"), mpmath.mpf("1e-15")
        expected = (sigma_prime(activation, point + h)
                    - sigma_prime(activation, point - h)) / (2 * h)

        # Act
        second = sigma_second(activation, point)

        # Assert
        assert abs(second - expected) < mpmath.mpf("1e-25")


def test_sigma_prime_at_a_kink_takes_the_requested_side() -> None:
    # Arrange
    zero = 0

    # Act
    relu = (sigma_prime(Activation.RELU, zero),
            sigma_prime(Activation.RELU, zero, at_kink="right"))
    leaky = (sigma_prime(Activation.LEAKY_RELU, zero),
             sigma_prime(Activation.LEAKY_RELU, zero, at_kink="right"))

    # Assert
    assert relu == (0, 1)
    assert leaky == (mpmath.mpf("0.01"), 1)


def test_only_relu_and_leaky_relu_fail_to_be_differentiable_and_only_at_zero(
        ) -> None:
    # Arrange
    activations = list(Activation)

    # Act
    at_zero = {a for a in activations if not is_differentiable_at(a, 0)}
    elsewhere = {a for a in activations if not is_differentiable_at(a, "1e-30")}

    # Assert
    assert at_zero == {Activation.RELU, Activation.LEAKY_RELU}
    assert elsewhere == set()
    assert Activation.ELU.has_kink is False


def test_softmax_follows_the_ratio_of_exponentials_and_ignores_a_shift() -> None:
    # Arrange
    with mpmath.workdps(30):
        logits = [mpmath.mpf(0), mpmath.log(3)]

        # Act
        p = softmax(logits)
        shifted = softmax([v + 1000 for v in logits])

        # Assert: e^0 : e^{log 3} = 1 : 3.
        assert abs(p[0] - mpmath.mpf("0.25")) < mpmath.mpf("1e-29")
        assert abs(p[1] - mpmath.mpf("0.75")) < mpmath.mpf("1e-29")
        assert abs(shifted[1] - mpmath.mpf("0.75")) < mpmath.mpf("1e-29")


def test_squared_error_is_half_the_squared_distance() -> None:
    # Arrange
    a, y = to_exact([1.0, 2.0]), to_exact([0.0, 0.0])

    # Act
    value = example_loss(Loss.SQUARED_ERROR, list(a), list(y))

    # Assert
    assert value == mpmath.mpf("2.5")


def test_cross_entropy_uses_targets_as_given_even_when_they_do_not_sum_to_one(
        ) -> None:
    # Arrange: softmax(0, 0) = (1/2, 1/2); -(1 log 1/2 + 2 log 1/2) = 3 log 2.
    with mpmath.workdps(30):
        a, y = to_exact([0.0, 0.0]), to_exact([1.0, 2.0])

        # Act
        value = example_loss(Loss.SOFTMAX_CROSS_ENTROPY, list(a), list(y))

        # Assert
        assert abs(value - 3 * mpmath.log(2)) < mpmath.mpf("1e-29")


def test_cross_entropy_keeps_a_tiny_loss_to_full_relative_precision() -> None:
    # Arrange: a = (100, 0), y = (1, 0): loss = log(1 + e^-100) ~ e^-100.
    with mpmath.workdps(30):
        a, y = to_exact([100.0, 0.0]), to_exact([1.0, 0.0])

        # Act
        value = example_loss(Loss.SOFTMAX_CROSS_ENTROPY, list(a), list(y))

        # Assert
        expected = mpmath.log1p(mpmath.exp(-100))
        assert abs(value - expected) / expected < mpmath.mpf("1e-28")


def test_forward_exact_evaluates_a_two_layer_network_by_hand() -> None:
    # Arrange: x = (1, 2); z_1 = (1*1 + 1*2 - 1, 1 - 2) = (2, -1), relu -> (2, 0);
    # z_2 = 3*2 + 4*0 + 0.5 = 6.5; loss (6.5 - 0.5)^2 / 2 = 18.
    network = Network((2, 2, 1), (Activation.RELU, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    W = [to_exact([[1.0, 1.0], [1.0, -1.0]]), to_exact([[3.0, 4.0]])]
    b = [to_exact([-1.0, 0.0]), to_exact([0.5])]

    # Act
    forward = forward_exact(network, W, b, to_exact([1.0, 2.0]), to_exact([0.5]))

    # Assert
    assert [float(v) for v in forward.z[0]] == [2.0, -1.0]
    assert [float(v) for v in forward.a[1]] == [2.0, 0.0]
    assert [float(v) for v in forward.z[1]] == [6.5]
    assert [float(v) for v in forward.a[0]] == [1.0, 2.0]
    assert forward.loss == 18


def test_unknown_activation_and_loss_are_rejected() -> None:
    # Arrange
    not_an_activation = "swish"

    # Act
    with pytest.raises(ValueError) as activation_error:
        sigma(not_an_activation, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as loss_error:
        example_loss("hinge", [0], [0])  # type: ignore[arg-type]

    # Assert
    assert "is not an Activation" in str(activation_error.value)
    assert "is not a Loss" in str(loss_error.value)
