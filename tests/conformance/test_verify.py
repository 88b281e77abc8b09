"""verify_gradients: one loss and gradient judged against the oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance import verify_gradients
from spec import Activation, Holds, Loss, Network, NotApplicable, Parameters, Violated
from spec.errors import ArgumentTypeError, BackpropSpecError, UsageError

NETWORK = Network((2, 2, 1), (Activation.IDENTITY, Activation.IDENTITY),
                  Loss.SQUARED_ERROR)
PARAMETERS = Parameters((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0]])),
                        (np.zeros(2), np.zeros(1)))
X = np.array([[1.0, 2.0], [3.0, 4.0]])
Y = np.array([[0.0], [0.0]])


def _hand_gradients() -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    # a = x_1 + x_2: 3 and 7; loss = mean of a^2 / 2 = (4.5 + 24.5) / 2 = 14.5.
    # dL/da = a / B = [1.5, 3.5]; b_2 gradient 5; W_2 gradient = sum over the
    # examples of (dL/da) z_1^T = 1.5 [1, 2] + 3.5 [3, 4] = [12, 17];
    # layer 1: delta_1 = W_2^T dL/da, so b_1 gradient [5, 5] and W_1 gradient
    # rows [1.5 + 10.5, 3 + 14] = [12, 17] for both units.
    return (14.5, [np.array([[12.0, 17.0], [12.0, 17.0]]), np.array([[12.0, 17.0]])],
            [np.array([5.0, 5.0]), np.array([5.0])])


def test_hand_computed_gradients_hold_as_parameters_and_as_a_pair() -> None:
    loss, weights, biases = _hand_gradients()

    as_parameters = verify_gradients(NETWORK, PARAMETERS, X, Y, loss,
                                      Parameters(tuple(weights), tuple(biases)))
    as_pair = verify_gradients(NETWORK, PARAMETERS, X, Y, loss, (weights, biases))

    assert isinstance(as_parameters, Holds)
    assert as_parameters.worst_error_in_bounds == 0.0  # every value is exact here
    assert as_parameters.compared == 1 + 4 + 2 + 2 + 1
    assert as_pair == as_parameters


def test_a_sum_over_the_batch_is_named_with_its_entry_and_pattern() -> None:
    loss, weights, biases = _hand_gradients()
    summed = Parameters(tuple(2 * w for w in weights), tuple(2 * b for b in biases))

    verdict = verify_gradients(NETWORK, PARAMETERS, X, Y, loss, summed)

    assert isinstance(verdict, Violated)
    assert verdict.expected in (12.0, 17.0, 5.0)
    assert verdict.actual == 2 * verdict.expected
    assert "off by the batch size 2" in verdict.detail


def test_gradients_of_another_kind_are_refused_with_what_was_expected() -> None:
    with pytest.raises(TypeError, match="expected spec.Parameters or a pair"):
        verify_gradients(NETWORK, PARAMETERS, X, Y, 14.5, {"W": 1})  # type: ignore[arg-type]


# Arguments that are not one batch and one answer for it. The network above
# has W_1 (2 x 2), b_1 (2), W_2 (1 x 2), b_2 (1); X is 2 x 2 and Y 2 x 1, so
# the batch size is 2. W and B are the hand-computed gradients.

_, W, B = _hand_gradients()


@pytest.mark.parametrize(("network", "loss", "gradients", "error", "words"), [
    pytest.param(NETWORK, 14.5, ((*W, W[1]), (*B, B[1])), ValueError,
                 ["gradients", "3 weight gradients", "2 layers", "W_1 to W_2"],
                 id="an extra layer"),
    pytest.param(NETWORK, np.array([14.5, 14.5]), (W, B), ValueError,
                 ["loss", "one number", "shape (2,)"], id="two losses"),
    pytest.param(NETWORK, 14.5, ([w + 5j for w in W], B), TypeError,
                 ["gradient in W_1", "real numbers", "complex128"], id="complex"),
    pytest.param(NETWORK, 14.5, ([W[0].astype(str), W[1]], B), TypeError,
                 ["gradient in W_1", "real numbers", "strings"], id="strings"),
    pytest.param(NETWORK, 14.5, (W, [B[0], B[1].astype(object)]), TypeError,
                 ["gradient in b_2", "real numbers", "object"], id="objects"),
    pytest.param(Network((2, 3, 1), NETWORK.activations, NETWORK.loss), 14.5, (W, B),
                 ValueError, ["parameters.weights[0] (W_1)", "shape (2, 2)",
                              "expected (3, 2)", "disagree"],
                 id="widths that disagree with the parameters"),
    pytest.param(Network((2, 2.0, 1), NETWORK.activations,  # type: ignore[arg-type]
                         NETWORK.loss), 14.5, (W, B),
                 TypeError, ["network.widths", "int", "2.0", "position 1"],
                 id="a float width"),
])
def test_answers_that_do_not_fit_the_network_are_refused(
        network: Network, loss: object, gradients: object, error: type[Exception],
        words: list[str]) -> None:
    with pytest.raises(error) as raised:
        verify_gradients(network, PARAMETERS, X, Y, loss, gradients)  # type: ignore

    assert isinstance(raised.value, BackpropSpecError)
    for word in words:
        assert word in str(raised.value)


def _call(**changes: object) -> object:
    """verify_gradients on the hand-computed batch and answer, some changed."""
    arguments: dict[str, object] = dict(network=NETWORK, parameters=PARAMETERS,
                                        inputs=X, targets=Y, loss=14.5,
                                        gradients=(W, B))
    arguments.update(changes)
    return verify_gradients(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "error", "words"), [
    pytest.param(dict(gradients=((W[0], W[1].T), B)), ValueError,
                 ["gradient in W_2", "shape (2, 1)", "expected (1, 2)", "transposed"],
                 id="a transposed gradient"),
    pytest.param(dict(gradients=((W[0].ravel(), W[1]), B)), ValueError,
                 ["gradient in W_1", "shape (4,)", "expected (2, 2)", "reshape"],
                 id="a flattened gradient"),
    pytest.param(dict(gradients=((W[0],), B)), ValueError,
                 ["gradients", "1 weight gradient for a network of 2 layers"],
                 id="too few layers"),
    pytest.param(dict(gradients=(W, (B[0],))), ValueError,
                 ["gradients", "1 bias gradient for a network of 2 layers"],
                 id="a missing bias"),
    pytest.param(dict(inputs=X[:, :1]), ValueError,
                 ["inputs", "shape (2, 1)", "(B, n_0) = (B, 2)"], id="narrow inputs"),
    pytest.param(dict(targets=np.zeros((2, 2))), ValueError,
                 ["targets", "shape (2, 2)", "(B, n_L) = (2, 1)"], id="wide targets"),
    pytest.param(dict(inputs=np.zeros((0, 2)), targets=np.zeros((0, 1))), ValueError,
                 ["inputs", "empty batch"], id="an empty batch"),
    pytest.param(dict(oracle="x"), TypeError,
                 ["oracle", "impl.MpmathBackend", "str"], id="a string oracle"),
    pytest.param(dict(oracle=0), TypeError,
                 ["oracle", "impl.MpmathBackend", "int"], id="a falsy oracle"),
    pytest.param(dict(dtype=np.int64), ValueError,
                 ["dtype", "np.float64 or np.float32"], id="an integer dtype"),
    pytest.param(dict(parameters=(PARAMETERS.weights, PARAMETERS.biases)), TypeError,
                 ["parameters", "expected spec.Parameters", "tuple"],
                 id="parameters as a tuple"),
    pytest.param(dict(inputs=[[1.0, 2.0], [3.0]]), ValueError,
                 ["inputs", "could not be read", "same length"], id="ragged inputs"),
    pytest.param(dict(gradients=([[[12.0, 17.0], [12.0]], W[1]], B)), ValueError,
                 ["gradient in W_1", "could not be read"], id="a ragged gradient"),
])
def test_unusable_arguments_raise_errors_that_name_them(
        changes: dict[str, object], error: type[Exception], words: list[str]) -> None:
    with pytest.raises(error) as raised:
        _call(**changes)

    assert isinstance(raised.value, BackpropSpecError)
    for word in words:
        assert word in str(raised.value)


def test_tensors_that_require_grad_are_read_without_their_graph() -> None:
    torch = pytest.importorskip("torch")

    def tensor(array: np.ndarray) -> Any:
        return torch.tensor(array, dtype=torch.float64, requires_grad=True)

    verdict = _call(inputs=tensor(X), targets=tensor(Y),
                    parameters=Parameters(tuple(tensor(w) for w in PARAMETERS.weights),
                                          tuple(tensor(b) for b in PARAMETERS.biases)),
                    loss=tensor(np.array(14.5)),
                    gradients=([tensor(w) for w in W], [tensor(b) for b in B]))

    assert isinstance(verdict, Holds)
    assert verdict.worst_error_in_bounds == 0.0


def _with(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    changed = array.copy()
    changed[index] = value
    return changed


@pytest.mark.parametrize(("changes", "words"), [
    pytest.param(dict(inputs=_with(X, (1, 0), np.nan)),
                 ["inputs", "entry [1, 0] is nan", "1 of its 4 entries is not finite"],
                 id="NaN input"),
    pytest.param(dict(targets=_with(Y, (0, 0), -np.inf)),
                 ["targets", "entry [0, 0] is -inf"], id="infinite target"),
    pytest.param(dict(parameters=Parameters(
        (PARAMETERS.weights[0], _with(PARAMETERS.weights[1], (0, 1), np.nan)),
        PARAMETERS.biases)),
        ["parameters.weights[1] (W_2)", "entry [0, 1] is nan"], id="NaN weight"),
    pytest.param(dict(parameters=Parameters(
        PARAMETERS.weights, (PARAMETERS.biases[0], np.array([np.inf])))),
        ["parameters.biases[1] (b_2)", "entry [0] is inf"], id="infinite bias"),
])
def test_a_batch_that_is_not_finite_is_an_error_not_a_verdict(
        changes: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        _call(**changes)

    assert isinstance(raised.value, UsageError)
    for word in words:
        assert word in str(raised.value)


def test_a_loss_must_be_one_real_number() -> None:
    for loss, named in ((None, "NoneType"), ("0.5", "str '0.5'"), (True, "bool")):
        with pytest.raises(ArgumentTypeError) as raised:
            _call(loss=loss)
        message = str(raised.value)
        assert "loss: expected the batch-mean loss as a real number" in message
        assert f"got {named}" in str(raised.value)

    # The hand-computed loss 14.5 in every form a number can take.
    for number in (14.5, np.float64(14.5), np.float32(14.5), 29 / 2, np.array(14.5),
                   np.array([14.5]), np.array([[14.5]], dtype=np.float32)):
        assert isinstance(_call(loss=number), Holds), repr(number)
    # An answered NaN is the answer's fault: a violation, not an error.
    assert isinstance(_call(loss=float("nan")), Violated)


def test_magnitudes_beyond_float64_are_not_judged_rather_than_violated() -> None:
    # 1-2-1 identity, W_1 = (s, s)^T, W_2 = (s, -s), x = 1, y = 1, s = 2^600:
    # z_1 = (s, s) and a_2 = s^2 - s^2 = 0 exactly, so the loss is 1/2 and the
    # gradients are W_2: -(s, s), b_2: -1, W_1 and b_1: (-s, s), all in range.
    # But the bound of a_2 is at least gamma_3 * 2 s^2 ~ 2^1150: beyond float64.
    s = 2.0 ** 600
    network = Network((1, 2, 1), (Activation.IDENTITY, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[s], [s]]), np.array([[s, -s]])),
                            (np.zeros(2), np.zeros(1)))
    exact = ((np.array([[-s], [s]]), np.array([[-s, -s]])),
             (np.array([-s, s]), np.array([-1.0])))

    verdict = verify_gradients(network, parameters, np.array([[1.0]]),
                               np.array([[1.0]]), 0.5, exact)

    assert isinstance(verdict, NotApplicable)
    assert verdict.result_id == "backprop.batch-mean"
    assert "error bound cannot be computed in float64 at these magnitudes" in \
        verdict.reason
    assert "the bound of the loss overflows" in verdict.reason

    # One softplus unit at z = 1e300: a = 1e300 (to within e^-1e300), so the
    # loss a^2 / 2 ~ 5e599 and the W gradient a x ~ 1e600 overflow float64;
    # the b gradient, 1e300, does not. Float64 can only answer inf.
    softplus = Network((1, 1), (Activation.SOFTPLUS,), Loss.SQUARED_ERROR)
    verdict = verify_gradients(softplus, Parameters((np.ones((1, 1)),), (np.zeros(1),)),
                               np.array([[1e300]]), np.zeros((1, 1)), np.inf,
                               ((np.array([[np.inf]]),), (np.array([1e300]),)))

    assert isinstance(verdict, NotApplicable)
    assert verdict.reason.startswith("the exact loss is beyond float64's range "
                                     "(it rounds to infinity; 1 more exact value")


def test_a_kinked_unit_on_or_near_its_kink_is_not_judged() -> None:
    # z_1 = I (0, 1) + 0 = (0, 1): the first ReLU unit is exactly on its kink.
    # The gradients below take relu'(0) = 1, the right derivative: a = 1,
    # dL/da = a - y = -2, so b_2 -2, W_2 -2 (0, 1), b_1 (-2, -2), W_1 -2 (0, 1).
    relu = Network((2, 2, 1), (Activation.RELU, Activation.IDENTITY),
                   Loss.SQUARED_ERROR)
    parameters = Parameters((np.eye(2), np.ones((1, 2))), (np.zeros(2), np.zeros(1)))
    right = ((np.array([[0.0, -2.0], [0.0, -2.0]]), np.array([[0.0, -2.0]])),
             (np.array([-2.0, -2.0]), np.array([-2.0])))

    verdict = verify_gradients(relu, parameters, np.array([[0.0, 1.0]]),
                               np.array([[3.0]]), 2.0, right)

    assert verdict == NotApplicable(
        "backprop.batch-mean",
        "relu is not differentiable at z = 0: layer 1 unit 0 of example 0 has z = 0")

    # z = 1 - (1 - 2^-53) = 2^-53 ~ 1.11e-16 is not 0, but a float64 dot
    # product of two terms errs by up to gamma_3 (1 + 1 - 2^-53) ~ 6.66e-16.
    near = Network((2, 1, 1), (Activation.RELU, Activation.IDENTITY),
                   Loss.SQUARED_ERROR)
    verdict = verify_gradients(
        near, Parameters((np.array([[1.0, -1.0]]), np.ones((1, 1))),
                         (np.zeros(1), np.zeros(1))),
        np.array([[1.0, 1.0 - 2.0 ** -53]]), np.zeros((1, 1)), 0.0,
        ((np.zeros((1, 2)), np.zeros((1, 1))), (np.zeros(1), np.zeros(1))))

    assert isinstance(verdict, NotApplicable)
    assert verdict.reason == ("layer 1 unit 0 of example 0 has z = 1.11e-16, within "
                              "its rounding bound 6.66e-16 of the relu kink, so float "
                              "arithmetic may take either side")


def test_only_float64_and_float32_are_formats_and_their_names_are_normalised() -> None:
    for dtype in (np.float16, "float16", np.dtype(np.float16), np.longdouble, float,
                  "f4"):
        with pytest.raises(UsageError) as raised:
            _call(dtype=dtype)
        assert f"dtype={dtype!r}" in str(raised.value)
        assert "np.float64 or np.float32" in str(raised.value)

    # A loss off by 1e-12 of 14.5 is within float32's bound (some 1e-6) and far
    # outside float64's (some 1e-14), whichever way the format is named.
    for single in (np.float32, "float32", np.dtype(np.float32)):
        assert isinstance(_call(loss=14.5 + 1e-12, dtype=single), Holds), single
    for double in (np.float64, "float64", np.dtype(np.float64)):
        assert isinstance(_call(loss=14.5 + 1e-12, dtype=double), Violated), double
