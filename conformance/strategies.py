"""Hypothesis strategies for networks, parameters and batches.

Cases are valid by construction: nothing is filtered. Structure (depth,
widths, activations, loss, batch size, magnitudes, where kinks are forced) is
drawn by Hypothesis and shrinks towards the smallest network; the numbers
themselves come from a NumPy generator seeded by a drawn integer, so a case
stays small in Hypothesis's buffer however many parameters it has, and
shrinks to seed 0.

Magnitudes span several orders, and the largest ones drive every saturating
activation (sigmoid, tanh, softplus, ELU) and softmax into their flat tails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import event, target
from hypothesis import strategies as st

from impl._protocol import NetworkConstraints
from spec import Activation, FloatArray, Loss, Network, Parameters

MAX_DEPTH = 6
MAX_WIDTH = 8
MAX_BATCH = 8
WEIGHT_SCALES = (1.0, 0.1, 3.0, 30.0)
"""Standard deviations of the weights: typical, small, large, saturating."""
INPUT_SCALES = (1.0, 0.01, 10.0, 100.0)
"""Standard deviations of inputs and biases."""
OVERFLOW_INPUT_SCALES = (300.0, 1000.0, 3000.0)
"""Input and bias scales of the robustness probe: pre-activations and logits
of hundreds to thousands, past where a naive ``exp`` overflows (about 709.8
in float64), while every exact loss and gradient stays finite."""

TARGET_KINDS = ("one-hot", "probabilities", "arbitrary")
"""Targets for softmax cross-entropy: one class, a distribution, or any
non-negative vector (the lemma does not need them to sum to one)."""


@dataclass(frozen=True)
class Case:
    """One judged point: a network, its parameters, a batch and targets.

    Attributes
    ----------
    probe_seed
        Seeds the random direction or entries some checks probe with.
    """

    network: Network
    parameters: Parameters
    inputs: FloatArray
    targets: FloatArray
    probe_seed: int = 0

    @property
    def dtype(self) -> np.dtype[np.floating]:
        """The float format of the case's arrays (the run's dtype)."""
        return self.inputs.dtype

    def astype(self, dtype: type[np.floating]) -> Case:
        """The same case with every number rounded to ``dtype``.

        The oracle then works from the exact values of the rounded numbers,
        so a float32 run is judged on exactly what the backend received.
        """
        def cast(array: FloatArray) -> FloatArray:
            return np.asarray(array, dtype=dtype)

        return Case(self.network,
                    Parameters(tuple(cast(w) for w in self.parameters.weights),
                               tuple(cast(b) for b in self.parameters.biases)),
                    cast(self.inputs), cast(self.targets), self.probe_seed)

    @property
    def batch_size(self) -> int:
        """Rows of the batch."""
        return int(self.inputs.shape[0])

    def describe(self) -> str:
        """One line for reports."""
        return f"network {self.network.describe()}, batch {self.batch_size}"


@st.composite
def networks(
    draw: st.DrawFn,
    *,
    min_depth: int = 1,
    max_depth: int = MAX_DEPTH,
    max_width: int = MAX_WIDTH,
    activations: tuple[Activation, ...] = tuple(Activation),
    losses: tuple[Loss, ...] = tuple(Loss),
    constraints: NetworkConstraints | None = None,
) -> Network:
    """Networks of ``min_depth``-``max_depth`` layers, widths 1-``max_width``.

    Half the draws use one width throughout, so every weight matrix is square
    (a transposed gradient then has the right shape and only its values can
    expose it). ``constraints`` narrows the draw, by construction, to the
    networks a backend can represent; :func:`supported` says beforehand
    whether any remain.
    """
    limits = _Limits.of(constraints, min_depth, max_depth, max_width, activations,
                        losses)
    loss = draw(st.sampled_from(limits.losses))
    depth = draw(st.integers(limits.min_depth, limits.max_depth))
    narrowest = limits.min_output_width.get(loss, 1)
    if draw(st.booleans()):
        width = draw(st.integers(narrowest, limits.max_width))
        widths = (width,) * (depth + 1)
        event("square layers")
    else:
        widths = tuple(draw(st.integers(1, limits.max_width)) for _ in range(depth))
        widths += (draw(st.integers(narrowest, limits.max_width)),)
    if limits.same_hidden and depth > 1:
        hidden = (draw(st.sampled_from(limits.hidden)),) * (depth - 1)
    else:
        hidden = tuple(draw(st.sampled_from(limits.hidden)) for _ in range(depth - 1))
    chosen = hidden + (draw(st.sampled_from(limits.output[loss])),)
    _events(widths, chosen, loss)
    return Network(widths, chosen, loss)


@dataclass(frozen=True)
class _Limits:
    """The intersection of a strategy's arguments and a backend's constraints."""

    min_depth: int
    max_depth: int
    max_width: int
    min_output_width: Mapping[Loss, int]
    hidden: tuple[Activation, ...]
    output: dict[Loss, tuple[Activation, ...]]
    losses: tuple[Loss, ...]
    same_hidden: bool

    @staticmethod
    def of(constraints: NetworkConstraints | None, min_depth: int, max_depth: int,
           max_width: int, activations: tuple[Activation, ...],
           losses: tuple[Loss, ...]) -> _Limits:
        c = constraints or NetworkConstraints()
        hidden = tuple(a for a in activations if a in c.activations)
        output = {loss: tuple(a for a in activations
                              if a in c.output_activations.get(loss, frozenset()))
                  for loss in losses}
        low = max(min_depth, c.min_depth)
        high = min(max_depth, c.max_depth or max_depth)
        if not hidden:
            high = min(high, 1)
        usable = tuple(loss for loss in losses if output[loss] and
                       c.min_output_width.get(loss, 1) <= min(max_width,
                                                              c.max_width or max_width))
        return _Limits(low, high, min(max_width, c.max_width or max_width),
                       c.min_output_width, hidden, output, usable,
                       c.same_hidden_activation)

    @property
    def empty(self) -> bool:
        return not self.losses or self.min_depth > self.max_depth


def supported(constraints: NetworkConstraints | None, *, min_depth: int = 1,
              max_depth: int = MAX_DEPTH,
              activations: tuple[Activation, ...] = tuple(Activation),
              losses: tuple[Loss, ...] = tuple(Loss)) -> bool:
    """Whether :func:`networks` with these arguments can draw anything at all."""
    limits = _Limits.of(constraints, min_depth, max_depth, MAX_WIDTH, activations,
                        losses)
    return not limits.empty


def _events(widths: tuple[int, ...], chosen: tuple[Activation, ...],
            loss: Loss) -> None:
    event(f"depth {len(widths) - 1}")
    event(f"loss {loss.value}")
    if 1 in widths:
        event("a layer of width 1")
    for activation in set(chosen):
        event(f"activation {activation.value}")


@st.composite
def cases(
    draw: st.DrawFn,
    network_strategy: st.SearchStrategy[Network] | None = None,
    *,
    min_batch: int = 1,
    max_batch: int = MAX_BATCH,
    dtype: type[np.floating] = np.float64,
    probability_targets: bool = False,
    weight_scales: tuple[float, ...] = WEIGHT_SCALES,
    input_scales: tuple[float, ...] = INPUT_SCALES,
) -> Case:
    """Cases over ``network_strategy`` (default :func:`networks`).

    A third of the draws force kinks: zero inputs and biases make the first
    layer's pre-activations exactly 0, where ReLU has no derivative.
    """
    network = draw(network_strategy if network_strategy is not None else networks())
    batch = draw(st.integers(min_batch, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layer_scales = [draw(st.sampled_from(weight_scales)) for _ in network.activations]
    input_scale = draw(st.sampled_from(input_scales))
    kinks = draw(st.integers(0, 2)) == 0

    weights = tuple(rng.standard_normal(network.weight_shape(ell)) * scale
                    for ell, scale in enumerate(layer_scales, start=1))
    biases = tuple(rng.standard_normal(n) * input_scale for n in network.widths[1:])
    inputs = rng.standard_normal((batch, network.widths[0])) * input_scale
    if kinks:
        biases = (np.zeros_like(biases[0]),) + biases[1:]
        inputs[rng.random(inputs.shape) < 0.5] = 0.0
        event("kinks forced (zero inputs and first-layer biases)")
    targets = _targets(draw, rng, network, batch, input_scale, probability_targets)

    probe_seed = draw(st.integers(0, 2**16))
    _record_magnitudes(network, weights, biases, inputs, batch)
    case = Case(network, Parameters(weights, biases), inputs, targets, probe_seed)
    return case.astype(dtype)


def _targets(draw: st.DrawFn, rng: np.random.Generator, network: Network,
             batch: int, scale: float, probability_targets: bool) -> FloatArray:
    n = network.widths[-1]
    if network.loss is Loss.SQUARED_ERROR:
        return rng.standard_normal((batch, n)) * scale
    kinds = TARGET_KINDS[:2] if probability_targets else TARGET_KINDS
    kind = draw(st.sampled_from(kinds))
    event(f"targets {kind}")
    if kind == "one-hot":
        one_hot: FloatArray = np.eye(n)[rng.integers(0, n, size=batch)]
        return one_hot
    values = rng.random((batch, n))
    if kind == "probabilities":
        return np.asarray(values / values.sum(axis=1, keepdims=True), dtype=np.float64)
    return values * 3.0


def _record_magnitudes(network: Network, weights: tuple[FloatArray, ...],
                       biases: tuple[FloatArray, ...], inputs: FloatArray,
                       batch: int) -> None:
    """Events and a target so coverage of hard regions shows in statistics."""
    event("batch 1" if batch == 1 else "batch > 1")
    a = inputs
    largest = 0.0
    for W, b in zip(weights, biases):
        z = a @ W.T + b
        largest = max(largest, float(np.max(np.abs(z))))
        a = np.tanh(z)
    if largest > 20.0:
        event("saturating pre-activations (|z| > 20)")
    target(min(largest, 1e6), label="largest |pre-activation|")


def single_layer_cases(
    *,
    loss: Loss | None = None,
    activations: tuple[Activation, ...] = (Activation.IDENTITY,),
    constraints: NetworkConstraints | None = None,
    dtype: type[np.floating] = np.float64,
) -> st.SearchStrategy[Case]:
    """Cases of one layer and one example: the isolating probes of the lemmas."""
    losses = (loss,) if loss is not None else tuple(Loss)
    return cases(networks(min_depth=1, max_depth=1, activations=activations,
                          losses=losses, constraints=constraints),
                 min_batch=1, max_batch=1, dtype=dtype,
                 probability_targets=_probabilities(constraints))


def _probabilities(constraints: NetworkConstraints | None) -> bool:
    return constraints is not None and constraints.targets_sum_to_one


def one_case_per_activation(constraints: NetworkConstraints | None = None,
                            dtype: type[np.floating] = np.float64) -> tuple[Case, ...]:
    """One single-layer case per activation the backend supports, fixed.

    Each is a 3-unit layer with squared error and one example, drawn from a
    fixed generator, with pre-activations spread over both signs and both the
    linear and the curved part of every activation. A check that carries them
    judges every activation in every run, whatever the seed and the number of
    drawn examples.
    """
    chosen = []
    for index, activation in enumerate(Activation):
        if not supported(constraints, max_depth=1, activations=(activation,),
                         losses=(Loss.SQUARED_ERROR,)):
            continue
        limits = _Limits.of(constraints, 1, 1, MAX_WIDTH, (activation,),
                            (Loss.SQUARED_ERROR,))
        width = max(3, limits.min_output_width.get(Loss.SQUARED_ERROR, 1))
        rng = np.random.default_rng(1000 + index)
        network = Network((3, width), (activation,), Loss.SQUARED_ERROR)
        parameters = Parameters((rng.standard_normal((width, 3)) * 2.0,),
                                (rng.standard_normal(width),))
        case = Case(network, parameters, rng.standard_normal((1, 3)),
                    rng.standard_normal((1, width)))
        chosen.append(case.astype(dtype))
    return tuple(chosen)
