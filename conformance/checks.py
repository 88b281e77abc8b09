"""One check per result of :data:`spec.RESULTS`: how a backend is probed.

A check draws cases from a strategy, asks the backend under test for the
quantity the result is about, computes what the statement says it must be
with the mpmath oracle, bounds the admissible float error with
:mod:`conformance._bounds`, and hands all of it to the result's predicate.

Checks isolate what they judge: the loss-gradient and layer lemmas are
probed on networks of one layer and one example, where nothing else can go
wrong; the theorems on deep networks; the batch mean on batches. A mistake
shows first at the earliest result, in registry order, that it violates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import mpmath
import numpy as np
from hypothesis import strategies as st

from conformance._bounds import BatchBounds, BoundCalculator
from conformance._guard import (
    BackendMisbehaved,
    call_backend,
    call_capability,
    call_declared,
    first_example,
    float_array,
)
from conformance.strategies import (
    OVERFLOW_INPUT_SCALES,
    Case,
    cases,
    networks,
    one_case_per_activation,
    single_layer_cases,
    supported,
)
from impl import Backend, Capability, MpmathBackend, NetworkConstraints
from impl import _numeric
from impl.oracle import ExactBatch
from impl._counting import OperationCounter
from spec import (
    Activation,
    Holds,
    compare,
    ExactArray,
    FloatArray,
    Loss,
    Network,
    NotApplicable,
    Parameters,
    Verdict,
    to_exact,
    to_float,
    vec,
)
from spec import backprop as backprop_spec
from spec import chain_rule, gradient_product, jacobian, layer_jacobians
from spec import cost as cost_spec
from spec import loss_gradient as loss_spec
from spec import total_derivative as total_derivative_spec
from spec.conventions import forward_exact, softmax
from spec._verdict import worst_of

logger = logging.getLogger(__name__)

PROBED_ENTRIES = 3
"""Jacobian entries judged per example by the partial-derivative check; each
costs a high-precision numerical derivative, so a few per example, drawn
afresh each time, cover every entry over a run."""


@dataclass(frozen=True)
class BackendError:
    """The backend failed to answer: it raised, or answered malformed.

    Attributes
    ----------
    result_id
        The check that was running.
    message
        What was expected, what came back, and what to try.
    """

    result_id: str
    message: str


@dataclass(frozen=True)
class RobustnessError:
    """The backend returned inf or NaN where the exact values are finite.

    Reported in a category of its own: the formulas may be right and only
    overflow (softmax without a shift, ``log(1 + exp(z))`` for large ``z``).
    """

    result_id: str
    message: str


Outcome = Verdict | BackendError | RobustnessError


@dataclass(frozen=True)
class Check:
    """How one result is judged on one backend.

    Attributes
    ----------
    result_id
        The :class:`spec.Result` judged.
    strategy
        Cases to draw; ``None`` when the backend can represent none.
    judge
        ``judge(backend, oracle, case) -> Verdict``.
    needs
        Capabilities without which the check is not applicable.
    check_id, aspect
        For a second check of the same result: its own id and a few words
        naming what it adds (shown after the result's title).
    explicit
        Fixed cases judged in every run, whatever the seed, after the drawn
        ones: coverage that must not depend on luck (one per activation for
        the activation lemma).
    needs_any
        Capabilities of which the backend must declare at least one (the
        JVP or the VJP for the products with the Jacobian).
    """

    result_id: str
    strategy: st.SearchStrategy[Case] | None
    judge: Callable[[Backend, MpmathBackend, Case], Verdict]
    needs: frozenset[Capability] = frozenset()
    check_id: str = ""
    aspect: str = ""
    explicit: tuple[Case, ...] = ()
    needs_any: frozenset[Capability] = frozenset()

    @property
    def id(self) -> str:
        """The row id in reports: the result id, unless the check has its own."""
        return self.check_id or self.result_id

    def unmet_needs(self, capabilities: frozenset[Capability]) -> str:
        """Why a backend with ``capabilities`` cannot be judged here ("" if it can)."""
        missing = self.needs - capabilities
        if missing:
            return "the backend does not declare " + ", ".join(
                sorted(c.value for c in missing))
        if self.needs_any and not self.needs_any & capabilities:
            return "the backend declares neither " + " nor ".join(
                sorted(c.value for c in self.needs_any))
        return ""


def _exact_and_bounds(case: Case, oracle: MpmathBackend) -> \
        tuple[ExactBatch, BatchBounds]:
    """The exact batch of ``case`` and the error bounds of its dtype.

    A judge computes them once and uses them both to see whether a unit sits
    at its kink (:func:`kink_in`) and to judge the answer.
    """
    exact = oracle.exact(case.network, case.parameters, case.inputs, case.targets)
    bounds = BoundCalculator(case.network, case.parameters,
                             case.dtype.type).batch(exact, case.targets)
    return exact, bounds


# 2. Points where a hypothesis fails.

def kink_reason(case: Case, oracle: MpmathBackend, bounds: BoundCalculator | None
                = None) -> str | None:
    """Why ``case`` cannot be judged, if a kinked unit sits on or near its kink.

    On the kink the derivative does not exist; within the error bound of
    :math:`z` a float computation may land on either side, so its derivative
    is not determined by the exact point either.
    """
    if bounds is None:
        exact, batch_bounds = _exact_and_bounds(case, oracle)
    else:
        exact = oracle.exact(case.network, case.parameters, case.inputs, case.targets)
        batch_bounds = bounds.batch(exact, case.targets)
    return kink_in(case.network, exact, batch_bounds)


def kink_in(network: Network, exact: ExactBatch, bounds: BatchBounds) -> str | None:
    """:func:`kink_reason` on an exact batch and bounds already computed."""
    for ell, activation in enumerate(network.activations, start=1):
        if not activation.has_kink:
            continue
        z, e_z = exact.rounded.z[ell - 1], bounds.z[ell - 1]
        on_kink = np.asarray(exact.arrays.z[ell - 1] == 0, dtype=bool)
        near = np.abs(z) <= e_z
        for k, unit in zip(*np.nonzero(on_kink | near)):
            if on_kink[k, unit]:
                return (f"{activation.value} is not differentiable at z = 0: "
                        f"layer {ell} unit {unit} of example {k} has z = 0")
            return (f"layer {ell} unit {unit} of example {k} has "
                    f"z = {z[k, unit]:.3g}, within its rounding bound "
                    f"{e_z[k, unit]:.3g} of the {activation.value} "
                    "kink, so float arithmetic may take either side")
    return None


def _kink_convention(result_id: str, reason: str, backend: Backend,
                     bounds: BatchBounds, case: Case) -> NotApplicable:
    """Not applicable, naming the one-sided derivative the backend used, if any.

    The backend's bias gradients are compared, within the usual error
    bound, with the exact ones computed with the left and then the right
    derivative at every kink.
    """
    answer = call_backend(backend, case, result_id)
    kinked = [a for a in case.network.activations if a.has_kink]
    for side in ("left", "right"):
        one_sided = _one_sided_gradients(case, side)
        if all(np.all(np.abs(claimed - expected) <= bound) for claimed, expected, bound
               in zip(answer.gradients.biases, one_sided, bounds.bias_gradients)):
            slope = layer_jacobians.activation_slope(kinked[0], side)
            convention = f"{kinked[0].value}'(0) = {slope} ({side} derivative)"
            return NotApplicable(result_id, reason, convention)
    return NotApplicable(result_id, reason)


def _one_sided_gradients(case: Case, side: str) -> list[FloatArray]:
    """Exact bias gradients with sigma'(0) taken as the ``side`` derivative."""
    from spec.conventions import sigma_prime

    network = case.network
    W = [to_exact(w) for w in case.parameters.weights]
    b = [to_exact(v) for v in case.parameters.biases]
    totals: list[ExactArray] = [np.zeros(n, dtype=object) for n in network.widths[1:]]
    with mpmath.workdps(30):
        for x, y in zip(case.inputs, case.targets):
            forward = forward_exact(network, W, b, to_exact(x), to_exact(y))
            g = loss_spec.loss_gradient(network.loss, list(forward.a[-1]),
                                        list(to_exact(y)))
            for ell in range(network.depth, 0, -1):
                D = [sigma_prime(network.activations[ell - 1], v, at_kink=side)
                     for v in forward.z[ell - 1]]
                delta = np.array(D, dtype=object) * g
                totals[ell - 1] = totals[ell - 1] + delta
                g = W[ell - 1].T.dot(delta)
    return [to_float(np.asarray(t / case.batch_size, dtype=object)) for t in totals]


# 3. The checks, in registry order.

def judge_total_derivative(backend: Backend, oracle: MpmathBackend,
                           case: Case) -> Verdict:
    """The returned gradient is the derivative of the exact loss (Taylor test).

    One Taylor-remainder test per parameter block (each layer's ``W`` and
    ``b``), along a random direction within that block, so a failure names
    the layer and the parameter whose gradient is not the derivative.
    """
    result_id = total_derivative_spec.RESULT_ID
    exact, bounds = _exact_and_bounds(case, oracle)
    reason = kink_in(case.network, exact, bounds)
    if reason:
        return NotApplicable(result_id, reason)
    answer = call_backend(backend, case, result_id)
    theta = _flatten(case.parameters)
    g = _flatten(answer.gradients)
    rng = np.random.default_rng(case.probe_seed)
    bound_g = _flatten(Parameters(tuple(bounds.weight_gradients),
                                  tuple(bounds.bias_gradients)))

    def loss_of(flat: ExactArray) -> ExactArray:
        return np.array([_exact_batch_loss(case, flat)], dtype=object)

    verdicts: list[Verdict] = []
    for layer_index, quantity, block in _blocks(case.network):
        h = np.zeros(theta.size)
        h[block] = rng.standard_normal(block.stop - block.start)
        verdict = total_derivative_spec.check_total_derivative(
            loss_of, theta, g[None, :], h, bound=[float(np.abs(h) @ bound_g)],
            quantity=quantity, layer_index=layer_index)
        verdicts.append(verdict)
    return worst_of(verdicts)


def _blocks(network: Network) -> list[tuple[int, str, slice]]:
    """``(layer, "weight_gradient" | "bias_gradient", slice)`` of the flat vector."""
    blocks, start = [], 0
    for ell in range(1, network.depth + 1):
        m, n = network.weight_shape(ell)
        blocks.append((ell, "weight_gradient", slice(start, start + m * n)))
        start += m * n
        blocks.append((ell, "bias_gradient", slice(start, start + m)))
        start += m
    return blocks


def _flatten(parameters: Parameters) -> FloatArray:
    """All parameters as one vector: vec W_1, b_1, vec W_2, b_2, ..."""
    parts: list[FloatArray] = []
    for W, b in zip(parameters.weights, parameters.biases):
        parts += [np.asarray(vec(W), dtype=np.float64), np.asarray(b)]
    return np.concatenate(parts)


def _unflatten_exact(network: Network, flat: ExactArray) -> \
        tuple[list[ExactArray], list[ExactArray]]:
    weights: list[ExactArray] = []
    biases: list[ExactArray] = []
    start = 0
    for ell in range(1, network.depth + 1):
        m, n = network.weight_shape(ell)
        weights.append(flat[start:start + m * n].reshape((m, n), order="F"))
        start += m * n
        biases.append(flat[start:start + m])
        start += m
    return weights, biases


def _exact_batch_loss(case: Case, flat: ExactArray) -> object:
    weights, biases = _unflatten_exact(case.network, np.asarray(flat, dtype=object))
    losses = [forward_exact(case.network, weights, biases, to_exact(x),
                            to_exact(y)).loss
              for x, y in zip(case.inputs, case.targets)]
    return mpmath.fsum(losses) / len(losses)


def judge_jacobian(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """Entries of the loss gradient (and of declared Jacobians) are partials."""
    result_id = jacobian.RESULT_ID
    exact, bounds = _exact_and_bounds(case, oracle)
    reason = kink_in(case.network, exact, bounds)
    if reason:
        return NotApplicable(result_id, reason)
    answer = call_backend(backend, case, result_id)
    rng = np.random.default_rng(case.probe_seed)
    theta = _flatten(case.parameters)
    g = _flatten(answer.gradients)
    calculator = BoundCalculator(case.network, case.parameters, case.dtype.type)
    bound_g = _flatten(Parameters(tuple(bounds.weight_gradients),
                                  tuple(bounds.bias_gradients)))
    picks = sorted({int(i) for i in rng.integers(0, theta.size, PROBED_ENTRIES)})

    def loss_of(flat: ExactArray) -> ExactArray:
        return np.array([_exact_batch_loss(case, flat)], dtype=object)

    with mpmath.workdps(oracle.digits):
        verdict = jacobian.check_jacobian_entries(
            loss_of, theta, g[None, :], [(0, j) for j in picks],
            bound=bound_g[picks], quantity="loss_gradient")
    verdict = _name_parameter(verdict, case.network)
    verdicts = [verdict]
    declared = backend.capabilities
    for capability, method in ((Capability.INPUT_JACOBIAN, "input_jacobian"),
                               (Capability.FORWARD_JACOBIAN,
                                "input_jacobian_forward")):
        if capability in declared:
            verdicts.append(_judge_input_jacobian_entries(
                backend, oracle, case, calculator, exact, rng, method))
    if Capability.PARAMETER_JACOBIAN in declared:
        verdicts.append(_judge_parameter_jacobian_entries(backend, oracle, case,
                                                          calculator, exact, rng))
    return worst_of(verdicts)


def _name_parameter(verdict: Verdict, network: Network) -> Verdict:
    """Turn a flat gradient index into the layer, parameter and entry."""
    from spec import Violated

    if not isinstance(verdict, Violated):
        return verdict
    flat_index = verdict.location.index[-1]
    start = 0
    for ell in range(1, network.depth + 1):
        m, n = network.weight_shape(ell)
        if flat_index < start + m * n:
            offset = flat_index - start
            location = replace(verdict.location, quantity="weight_gradient",
                               layer_index=ell, index=(offset % m, offset // m))
            return replace(verdict, location=location)
        start += m * n
        if flat_index < start + m:
            location = replace(verdict.location, quantity="bias_gradient",
                               layer_index=ell, index=(flat_index - start,))
            return replace(verdict, location=location)
        start += m
    return verdict


def _judge_input_jacobian_entries(backend: Backend, oracle: MpmathBackend,
                                  case: Case, calculator: BoundCalculator,
                                  exact: ExactBatch, rng: np.random.Generator,
                                  method: str) -> Verdict:
    """Sampled entries of a declared input Jacobian against partial derivatives."""
    result_id = jacobian.RESULT_ID
    network = case.network
    shape = (network.widths[-1], network.widths[0])
    claimed = call_capability(backend, method, case, result_id, shape)
    bound = calculator.input_jacobian(exact.examples[0])
    W = [to_exact(w) for w in case.parameters.weights]
    b = [to_exact(v) for v in case.parameters.biases]
    zeros = to_exact(np.zeros(network.widths[-1]))

    def network_map(v: ExactArray) -> ExactArray:
        return forward_exact(network, W, b, np.asarray(v, dtype=object), zeros).a[-1]

    entries = sorted({(int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1])))
                      for _ in range(PROBED_ENTRIES)})
    with mpmath.workdps(oracle.digits):
        return jacobian.check_jacobian_entries(
            network_map, case.inputs[0], claimed, entries,
            bound=[bound[i, j] for i, j in entries],
            quantity=f"{method} (input Jacobian)")


def _judge_parameter_jacobian_entries(backend: Backend, oracle: MpmathBackend,
                                      case: Case, calculator: BoundCalculator,
                                      exact: ExactBatch,
                                      rng: np.random.Generator) -> Verdict:
    """Sampled entries of a declared parameter Jacobian against partials."""
    result_id = jacobian.RESULT_ID
    network = case.network
    theta = _flatten(case.parameters)
    shape = (network.widths[-1], theta.size)
    claimed = call_capability(backend, "parameter_jacobian", case, result_id, shape)
    bound = calculator.parameter_jacobian(exact.examples[0])
    x, zeros = to_exact(case.inputs[0]), to_exact(np.zeros(network.widths[-1]))

    def network_map(flat: ExactArray) -> ExactArray:
        weights, biases = _unflatten_exact(network, np.asarray(flat, dtype=object))
        return forward_exact(network, weights, biases, x, zeros).a[-1]

    entries = sorted({(int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1])))
                      for _ in range(PROBED_ENTRIES)})
    with mpmath.workdps(oracle.digits):
        return jacobian.check_jacobian_entries(
            network_map, theta, claimed, entries,
            bound=[bound[i, j] for i, j in entries],
            quantity="parameter_jacobian")


def _input_jacobian(backend: Backend, case: Case, result_id: str) -> FloatArray:
    shape = (case.network.widths[-1], case.network.widths[0])
    return call_capability(backend, "input_jacobian", case, result_id, shape)


def judge_jacobian_products(backend: Backend, oracle: MpmathBackend,
                            case: Case) -> Verdict:
    """JVP and VJP, whichever the backend declares, against the exact
    Jacobian, and their adjoint identity when it declares both."""
    result_id = jacobian.PRODUCTS_ID
    reason = kink_reason(case, oracle)
    if reason:
        return NotApplicable(result_id, reason)
    network = case.network
    rng = np.random.default_rng(case.probe_seed)
    u = rng.standard_normal(network.widths[-1]).astype(case.dtype)
    v = rng.standard_normal(network.widths[0]).astype(case.dtype)
    jvp = (call_capability(backend, "jvp", case, result_id, (network.widths[-1],), v)
           if Capability.JVP in backend.capabilities else None)
    vjp = (call_capability(backend, "vjp", case, result_id, (network.widths[0],), u)
           if Capability.VJP in backend.capabilities else None)

    exact = oracle.exact(network, case.parameters, case.inputs[:1], case.targets[:1])
    J = oracle.exact_input_jacobian(network, case.parameters, case.inputs[0])
    calculator = BoundCalculator(network, case.parameters, case.dtype.type)
    jvp_bound, vjp_bound = calculator.product_bounds(exact.examples[0], J, u, v)
    adjoint = (calculator.adjoint_bound(u, v, jvp, vjp, jvp_bound, vjp_bound)
               if jvp is not None and vjp is not None else None)
    with mpmath.workdps(oracle.digits):
        return jacobian.check_jacobian_products(
            J, u, v, jvp, vjp, jvp_bound=jvp_bound, vjp_bound=vjp_bound,
            adjoint_bound=adjoint)


def judge_chain_rule(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """The backend's Jacobians of the network map are the product of layer Jacobians.

    Reverse mode (and forward mode, where declared) are compared with the
    exact product of the layers' Jacobians; where the backend also gives its
    own per-layer Jacobians, each is compared with the exact factor, so the
    product the backend forms is a product of the right factors.
    """
    result_id = chain_rule.RESULT_ID
    reason = kink_reason(case, oracle)
    if reason:
        return NotApplicable(result_id, reason)
    exact = oracle.exact(case.network, case.parameters, case.inputs[:1],
                         case.targets[:1])
    forward = exact.examples[0].forward
    factors = []
    with mpmath.workdps(oracle.digits):
        for ell, activation in enumerate(case.network.activations, start=1):
            D = layer_jacobians.activation_jacobian(activation, list(forward.z[ell - 1]))
            factors.append(D.dot(to_exact(case.parameters.weights[ell - 1])))
    calculator = BoundCalculator(case.network, case.parameters, case.dtype.type)
    bound = calculator.input_jacobian(exact.examples[0])
    shape = (case.network.widths[-1], case.network.widths[0])

    verdicts = []
    methods = ["input_jacobian"] + (["input_jacobian_forward"] if
                                    Capability.FORWARD_JACOBIAN in backend.capabilities
                                    else [])
    for method in methods:
        claimed = call_capability(backend, method, case, result_id, shape)
        verdicts.append(chain_rule.check_chain_rule(factors, claimed, bound=bound,
                                                    quantity=method))
    if Capability.LAYER_JACOBIANS in backend.capabilities:
        verdicts.extend(_judge_layer_factors(backend, case, factors, calculator,
                                             exact))
    return worst_of(verdicts)


def _judge_layer_factors(backend: Backend, case: Case, factors: list[ExactArray],
                         calculator: BoundCalculator, exact: ExactBatch) -> \
        list[Verdict]:
    result_id = chain_rule.RESULT_ID
    answer = call_declared(backend, "layer_jacobians", case, result_id)
    try:
        claimed = list(answer)
    except Exception as error:  # noqa: BLE001 - diagnosed
        raise BackendMisbehaved(
            f"{result_id}: backend {backend.name!r}'s layer_jacobians returned "
            f"{type(answer).__name__}, expected a sequence of {case.network.depth} "
            "matrices, one per layer") from error
    if len(claimed) != case.network.depth:
        raise BackendMisbehaved(
            f"{result_id}: backend {backend.name!r} returned {len(claimed)} layer "
            f"Jacobians, expected {case.network.depth}, one per layer")
    bounds = calculator.layer_jacobians(exact.examples[0])
    verdicts: list[Verdict] = []
    for ell, (matrix, factor, bound) in enumerate(zip(claimed, factors, bounds), 1):
        array = float_array(matrix, case.network.weight_shape(ell),
                             f"layer {ell}'s Jacobian", backend.name, result_id,
                             case.dtype, case=first_example(case))
        verdicts.append(compare(result_id, claimed=array, exact=factor, bound=bound,
                                quantity="layer_jacobian", layer_index=ell))
    return verdicts


def judge_affine_layer(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """One identity layer, squared error: gradients through J_W and J_b."""
    answer = call_backend(backend, case, layer_jacobians.AFFINE_ID)
    exact, bounds = _exact_and_bounds(case, oracle)
    upstream = exact.examples[0].deltas[0]
    return layer_jacobians.check_affine_layer(
        case.parameters.weights[0], case.inputs[0], upstream,
        answer.gradients.weights[0], answer.gradients.biases[0],
        weight_bound=bounds.weight_gradients[0],
        bias_bound=bounds.bias_gradients[0])


def judge_activation_layer(backend: Backend, oracle: MpmathBackend,
                           case: Case) -> Verdict:
    """One layer with an activation, squared error: the bias gradient is diag(sigma') (a - y)."""
    result_id = layer_jacobians.ACTIVATION_ID
    exact, bounds = _exact_and_bounds(case, oracle)
    reason = kink_in(case.network, exact, bounds)
    if reason:
        return _kink_convention(result_id, reason, backend, bounds, case)
    answer = call_backend(backend, case, result_id)
    example = exact.examples[0]
    return layer_jacobians.check_activation_layer(
        case.network.activations[0], example.forward.z[0], example.upstream[0],
        answer.gradients.biases[0], bound=bounds.bias_gradients[0])


def judge_softmax_layer(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """One identity layer, cross-entropy: the bias gradient is J_softmax^T (-y / p)."""
    answer = call_backend(backend, case, layer_jacobians.SOFTMAX_ID)
    exact, bounds = _exact_and_bounds(case, oracle)
    example = exact.examples[0]
    with mpmath.workdps(oracle.digits):
        logits = example.forward.z[0]
        p = softmax(list(logits))
        upstream = np.array([-yi / pi for yi, pi in zip(to_exact(case.targets[0]), p)],
                            dtype=object)
        return layer_jacobians.check_softmax_layer(
            logits, upstream, answer.gradients.biases[0],
            bound=bounds.bias_gradients[0], layer_index=1)


def _judge_loss(loss: Loss) -> Callable[[Backend, MpmathBackend, Case], Verdict]:
    def judge(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
        r"""One identity layer: the loss gradient at a = W x + b.

        The loss gradient reaches the parameters by two routes: the bias
        gradient (through :math:`J_b = I`) and, where the input is not zero,
        the weight gradient (through :math:`a^\top \otimes I`). The lemma holds
        when either route shows it; a mistake confined to one parameter's
        Jacobian is then left to the affine-layer lemma, while a wrong loss
        gradient fails both routes.
        """
        result_id = (loss_spec.SQUARED_ERROR_ID if loss is Loss.SQUARED_ERROR
                     else loss_spec.CROSS_ENTROPY_ID)
        answer = call_backend(backend, case, result_id)
        exact, bounds = _exact_and_bounds(case, oracle)
        example = exact.examples[0]
        x = case.inputs[0]
        with mpmath.workdps(oracle.digits):
            through_bias = loss_spec.check_loss_gradient(
                loss, example.forward.a[-1], to_exact(case.targets[0]),
                answer.gradients.biases[0], bound=bounds.bias_gradients[0],
                layer_index=1)
            if isinstance(through_bias, Holds):
                return through_bias
            if not np.any(x != 0):
                return NotApplicable(result_id, "the input is zero, so the loss "
                                     "gradient reaches the parameters only through "
                                     "the bias gradient, which disagrees; that is "
                                     "judged under layer-jacobian.affine")
            through_weights = loss_spec.check_loss_gradient_through_weights(
                loss, example.forward.a[-1], case.targets[0], x,
                answer.gradients.weights[0], bound=bounds.weight_gradients[0])
        if isinstance(through_weights, Holds):
            return through_weights
        return worst_of([through_bias, through_weights])
    return _named(judge, f"judge_{loss.value}_gradient")


def _named(judge: Callable[[Backend, MpmathBackend, Case], Verdict],
           name: str) -> Callable[[Backend, MpmathBackend, Case], Verdict]:
    """Give a judge made by a factory a name that reports and docs can show."""
    judge.__name__ = judge.__qualname__ = name
    return judge


def _judge_per_layer(
    predicate: Callable[..., Verdict], result_id: str
) -> Callable[[Backend, MpmathBackend, Case], Verdict]:
    def judge(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
        """One example through a deep network: every layer's W and b gradients."""
        exact, bounds = _exact_and_bounds(case, oracle)
        reason = kink_in(case.network, exact, bounds)
        if reason:
            return NotApplicable(result_id, reason)
        answer = call_backend(backend, case, result_id)
        with mpmath.workdps(oracle.digits):
            return predicate(
                case.network, case.parameters.weights, case.parameters.biases,
                case.inputs[0], case.targets[0], answer.gradients.weights,
                answer.gradients.biases,
                weight_bounds=bounds.weight_gradients,
                bias_bounds=bounds.bias_gradients)
    return _named(judge, f"judge_{result_id.replace('.', '_').replace('-', '_')}")


def judge_batch_mean(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """A batch: loss and gradients are the means of the example ones."""
    result_id = backprop_spec.BATCH_ID
    exact, bounds = _exact_and_bounds(case, oracle)
    reason = kink_in(case.network, exact, bounds)
    if reason:
        return NotApplicable(result_id, reason)
    answer = call_backend(backend, case, result_id)
    examples = exact.examples
    with mpmath.workdps(oracle.digits):
        return backprop_spec.check_batch_mean(
            [e.forward.loss for e in examples],
            [e.weight_gradients for e in examples],
            [e.bias_gradients for e in examples],
            answer.loss, answer.gradients.weights, answer.gradients.biases,
            loss_bound=bounds.loss,
            weight_bounds=bounds.weight_gradients,
            bias_bounds=bounds.bias_gradients)


def judge_self_consistency(backend: Backend, oracle: MpmathBackend,
                           case: Case) -> Verdict:
    r"""The backend's gradient is the derivative of the backend's own loss.

    Needs no convention: whatever the backend calls its loss, the gradient it
    returns must be that function's derivative. Along a random unit
    direction :math:`h`, central differences of the backend's loss at steps
    :math:`t, 2t` give :math:`D(t), D(2t)`, extrapolated to
    :math:`D_R = (4D(t) - D(2t))/3` (truncation :math:`O(t^4)`), which must
    match :math:`\hat g \cdot h`. The step makes the largest pre-activation
    move by :math:`u^{1/5}` (the scale on which the activations bend is 1),
    balancing truncation against the loss's rounding, amplified
    :math:`	frac32eta_L/t` times. The allowance is that rounding bound plus
    the gradient's own bound along :math:`h`. A disagreement past it is
    re-measured at :math:`t/4`: a truncation error shrinks about 256-fold, a
    real inconsistency does not; only one that persists is a violation, and
    one that keeps shrinking without settling is not judged. A direction
    crossing a kink is not judged either.
    """
    result_id = total_derivative_spec.RESULT_ID
    exact, bounds = _exact_and_bounds(case, oracle)
    reason = kink_in(case.network, exact, bounds)
    if reason:
        return NotApplicable(result_id, reason)
    answer = call_backend(backend, case, result_id)
    theta = _flatten(case.parameters)
    h = np.random.default_rng(case.probe_seed).standard_normal(theta.size)
    h /= np.linalg.norm(h)
    claimed = float(_flatten(answer.gradients).astype(np.float64) @ h)
    u = float(np.finfo(case.dtype).eps) / 2
    t = u ** 0.2 / max(1.0, _sensitivity(case, theta, h))
    if _crosses_kink(case, theta, h, 2 * t, SECOND_DERIVATIVE_JUMPS):
        return NotApplicable(result_id, "a unit whose activation is not twice "
                             "differentiable at 0 (ReLU, leaky ReLU, ELU) reaches "
                             "or crosses z = 0 within the finite-difference steps")

    scale = max(1.0, abs(answer.loss) / max(abs(float(exact.loss)), 1e-300))
    gradient_bound = float(np.abs(h) @ _flatten(Parameters(
        tuple(bounds.weight_gradients), tuple(bounds.bias_gradients))))

    def measure(step: float) -> tuple[float, float]:
        D = {k: _difference(backend, case, theta, h, k * step, result_id)
             for k in (1, 2)}
        allowed = 1.5 * 2 * bounds.loss * scale / step + gradient_bound
        return (4 * D[1] - D[2]) / 3, allowed

    estimate, allowed = measure(t)
    if abs(estimate - claimed) > allowed:
        coarse = abs(estimate - claimed)
        estimate, allowed = measure(t / 4)
        if allowed < abs(estimate - claimed) < coarse / 4:
            return NotApplicable(result_id, "the finite differences of the "
                                 "backend's loss did not settle at steps "
                                 f"{t:.2g} and {t / 4:.2g}")
    with mpmath.workdps(oracle.digits):
        return compare(result_id, claimed=[claimed],
                       exact=np.array([mpmath.mpf(estimate)], dtype=object),
                       bound=[allowed], quantity="directional_derivative",
                       detail="the backend's gradient along h against central "
                       "differences of the backend's own loss")


def _difference(backend: Backend, case: Case, theta: FloatArray, h: FloatArray,
                step: float, result_id: str) -> float:
    """Central difference of the backend's own loss along ``h``."""
    up = call_backend(backend, _with_flat(case, theta + step * h), result_id).loss
    down = call_backend(backend, _with_flat(case, theta - step * h), result_id).loss
    return (float(up) - float(down)) / (2 * step)


def _sensitivity(case: Case, theta: FloatArray, h: FloatArray) -> float:
    """Largest rate of change of any pre-activation along ``h`` (float64)."""
    step = float(np.finfo(np.float64).eps) ** 0.5
    z_plus = _pre_activations(_with_flat(case, theta + step * h))
    z_minus = _pre_activations(_with_flat(case, theta - step * h))
    rates = [float(np.max(np.abs(p - m))) / (2 * step)
             for p, m in zip(z_plus, z_minus)]
    return float(max(rates))


def _pre_activations(case: Case) -> list[FloatArray]:
    a = case.inputs.astype(np.float64)
    result = []
    for W, b, activation in zip(case.parameters.weights, case.parameters.biases,
                                case.network.activations):
        z = a @ W.astype(np.float64).T + b
        result.append(z)
        a = _numeric.sigma(activation, z)
    return result


def _with_flat(case: Case, flat: FloatArray) -> Case:
    weights, biases, start = [], [], 0
    for ell in range(1, case.network.depth + 1):
        m, n = case.network.weight_shape(ell)
        weights.append(flat[start:start + m * n].reshape((m, n), order="F"))
        start += m * n
        biases.append(flat[start:start + m])
        start += m
    shifted = Case(case.network, Parameters(tuple(weights), tuple(biases)),
                   case.inputs, case.targets, case.probe_seed)
    return shifted.astype(case.dtype.type)


SECOND_DERIVATIVE_JUMPS = frozenset({Activation.RELU, Activation.LEAKY_RELU,
                                     Activation.ELU})
"""Activations whose second derivative jumps at 0; finite differences
extrapolated as if the loss were smooth err by O(t) across such a point."""


def _crosses_kink(case: Case, theta: FloatArray, h: FloatArray, reach: float,
                  kinds: frozenset[Activation]) -> bool:
    """Whether a pre-activation of one of ``kinds`` is 0 or changes sign within
    +-reach along h."""
    signs = []
    for flat in (theta - reach * h, theta, theta + reach * h):
        z_list = _pre_activations(_with_flat(case, flat))
        signs.append([np.sign(z) for z, activation in
                      zip(z_list, case.network.activations) if activation in kinds])
    return any(not all(np.array_equal(p, q) for p, q in zip(signs[1], other))
               for other in (signs[0], signs[2])) or \
        any(bool(np.any(p == 0)) for p in signs[1])


COST_DEPTHS = (1, 2, 4, 8, 16)
COST_WIDTH = 8


def judge_cost(backend: Backend, oracle: MpmathBackend, case: Case) -> Verdict:
    """Operation counts of the bundled backprop and explicit product, by depth."""
    from impl.jacobian_product import JacobianProductBackend
    from impl.reference import ReferenceBackend

    if not isinstance(backend, (ReferenceBackend, JacobianProductBackend)):
        return NotApplicable(cost_spec.RESULT_ID, "operation counts are known only "
                             "for the bundled reference and jacobian-product "
                             "implementations")
    counts = [_count(depth, case) for depth in COST_DEPTHS]
    return cost_spec.check_cost(counts)


def _count(depth: int, case: Case) -> cost_spec.OperationCounts:
    from impl.jacobian_product import JacobianProductBackend
    from impl.reference import ReferenceBackend

    network = Network((COST_WIDTH,) * (depth + 1), (Activation.TANH,) * depth,
                      Loss.SQUARED_ERROR)
    rng = np.random.default_rng(case.probe_seed)
    parameters = Parameters(
        tuple(rng.standard_normal((COST_WIDTH, COST_WIDTH)) for _ in range(depth)),
        tuple(rng.standard_normal(COST_WIDTH) for _ in range(depth)))
    x, y = rng.standard_normal((1, COST_WIDTH)), rng.standard_normal((1, COST_WIDTH))
    reference = ReferenceBackend(counter=OperationCounter())
    reference.loss_and_gradients(network, parameters, x, y)
    product = JacobianProductBackend(counter=OperationCounter())
    product.loss_and_gradients(network, parameters, x, y)
    assert reference.counter is not None and product.counter is not None
    return cost_spec.OperationCounts(depth, COST_WIDTH, reference.counter.forward,
                                     reference.counter.total, product.counter.total)


def all_checks(constraints: NetworkConstraints | None = None,
               dtype: type[np.floating] = np.float64) -> tuple[Check, ...]:
    """Every check, in the order of :data:`spec.RESULTS`.

    ``constraints`` and ``dtype`` shape the cases: only networks the backend
    can represent are drawn, with numbers of the run's format. A check whose
    networks the backend cannot represent at all gets no strategy, and is
    reported not applicable.
    """
    probabilities = constraints is not None and constraints.targets_sum_to_one

    def deep(*, max_batch: int, min_batch: int = 1) -> st.SearchStrategy[Case] | None:
        if not supported(constraints):
            return None
        return cases(networks(constraints=constraints), min_batch=min_batch,
                     max_batch=max_batch, dtype=dtype,
                     probability_targets=probabilities)

    def single(loss: Loss, activations: tuple[Activation, ...] = (
            Activation.IDENTITY,)) -> st.SearchStrategy[Case] | None:
        if not supported(constraints, max_depth=1, activations=activations,
                         losses=(loss,)):
            return None
        return single_layer_cases(loss=loss, activations=activations,
                                  constraints=constraints, dtype=dtype)

    def overflowing() -> st.SearchStrategy[Case] | None:
        if not supported(constraints):
            return None
        return cases(networks(constraints=constraints, max_depth=3), max_batch=2,
                     dtype=dtype, probability_targets=probabilities,
                     weight_scales=(1.0,), input_scales=OVERFLOW_INPUT_SCALES)

    squared, entropy = Loss.SQUARED_ERROR, Loss.SOFTMAX_CROSS_ENTROPY
    return (
        Check(total_derivative_spec.RESULT_ID, deep(max_batch=3),
              judge_total_derivative),
        Check(total_derivative_spec.RESULT_ID, deep(max_batch=3),
              judge_self_consistency, check_id="self-consistency",
              aspect="the backend's gradient against its own loss"),
        Check(jacobian.RESULT_ID, deep(max_batch=2), judge_jacobian),
        Check(jacobian.PRODUCTS_ID, deep(max_batch=1), judge_jacobian_products,
              needs_any=frozenset({Capability.VJP, Capability.JVP})),
        Check(chain_rule.RESULT_ID, deep(max_batch=1), judge_chain_rule,
              frozenset({Capability.INPUT_JACOBIAN})),
        Check(layer_jacobians.AFFINE_ID, single(squared), judge_affine_layer),
        Check(layer_jacobians.ACTIVATION_ID, single(squared, tuple(Activation)),
              judge_activation_layer,
              explicit=one_case_per_activation(constraints, dtype)),
        Check(layer_jacobians.SOFTMAX_ID, single(entropy), judge_softmax_layer),
        Check(loss_spec.SQUARED_ERROR_ID, single(squared),
              _judge_loss(Loss.SQUARED_ERROR)),
        Check(loss_spec.CROSS_ENTROPY_ID, single(entropy),
              _judge_loss(Loss.SOFTMAX_CROSS_ENTROPY)),
        Check(gradient_product.RESULT_ID, deep(max_batch=1),
              _judge_per_layer(gradient_product.check_gradient_product,
                               gradient_product.RESULT_ID)),
        Check(backprop_spec.DELTA_ID, deep(max_batch=1),
              _judge_per_layer(backprop_spec.check_delta_recursion,
                               backprop_spec.DELTA_ID)),
        Check(backprop_spec.BATCH_ID, deep(max_batch=8), judge_batch_mean),
        Check(backprop_spec.BATCH_ID, overflowing(), judge_batch_mean,
              check_id="robustness", aspect="pre-activations and logits past "
              "where a naive exp overflows"),
        Check(cost_spec.RESULT_ID, cases(networks(max_depth=1), max_batch=1),
              judge_cost),
    )
