r"""Judge one computed loss and gradient against the oracle, in one call.

:func:`verify_gradients` is what the suite does for a batch gradient,
without Hypothesis around it: the exact loss and batch-mean gradients from
the oracle, the error bound of every component for the declared float
format, and the comparison of every component (the loss and each entry of
every :math:`W_\ell` and :math:`b_\ell`) with its bound. It is the
counterpart of ``torch.autograd.gradcheck``, with no step size to choose
and no tolerance to tune:

>>> import numpy as np
>>> from impl import ReferenceBackend
>>> from spec import Activation, Loss, Network, Parameters
>>> network = Network((2, 3, 1), (Activation.TANH, Activation.IDENTITY),
...                   Loss.SQUARED_ERROR)
>>> rng = np.random.default_rng(0)
>>> parameters = Parameters((rng.standard_normal((3, 2)), rng.standard_normal((1, 3))),
...                         (rng.standard_normal(3), rng.standard_normal(1)))
>>> X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 1))
>>> answer = ReferenceBackend().loss_and_gradients(network, parameters, X, Y)
>>> verdict = verify_gradients(network, parameters, X, Y, answer.loss, answer.gradients)
>>> type(verdict).__name__, verdict.compared
('Holds', 14)
>>> wrong = Parameters(answer.gradients.weights,
...                    (answer.gradients.biases[0], -answer.gradients.biases[1]))
>>> print(verify_gradients(network, parameters, X, Y, answer.loss, wrong).location.describe())
bias_gradient b_2[0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conformance._bounds import BoundCalculator
from impl.oracle import MpmathBackend
from spec import FloatArray, Holds, Network, Parameters, SplitExact, Violated, compare
from spec._verdict import worst_of

RESULT_ID = "backprop.batch-mean"
"""The result a batch loss and gradient are judged under."""


GradientPair = tuple[Sequence[FloatArray], Sequence[FloatArray]]
"""Weight gradients and bias gradients, one array per layer each."""


def verify_gradients(network: Network, parameters: Parameters, inputs: FloatArray,
                     targets: FloatArray, loss: float,
                     gradients: Parameters | GradientPair, *,
                     dtype: type[np.floating] = np.float64,
                     oracle: MpmathBackend | None = None) -> Holds | Violated:
    """Compare a batch loss and its gradients with the exact ones, entry by entry.

    Parameters
    ----------
    network, parameters, inputs, targets
        The batch the loss and gradients were computed on (float64 arrays).
    loss, gradients
        The values to judge: the batch-mean loss and its gradient in every
        :math:`W_\\ell` and :math:`b_\\ell`, as :class:`spec.Parameters` or a
        pair ``(weight_gradients, bias_gradients)`` of per-layer arrays.
    dtype
        The format they were computed in; the bounds scale with its rounding.
    oracle
        The oracle to use (a default :class:`impl.MpmathBackend` if not given).

    Returns
    -------
    Holds or Violated
        The worst component: :class:`spec.Holds` when every one is within its
        bound, else :class:`spec.Violated` naming quantity, layer and index.
    """
    gradients = _as_parameters(gradients)
    oracle = oracle or MpmathBackend()
    exact = oracle.exact(network, parameters, inputs, targets)
    bounds = BoundCalculator(network, parameters, dtype).batch(exact, targets)
    split = exact.split
    parts: list[tuple[str, int | None, FloatArray, SplitExact, FloatArray]] = [
        ("loss", None, np.asarray([loss], dtype=np.float64), split.loss,
         np.asarray([bounds.loss]))]
    for ell in range(network.depth):
        parts.append(("weight_gradient", ell + 1, np.asarray(gradients.weights[ell]),
                      split.weight_gradients[ell], bounds.weight_gradients[ell]))
        parts.append(("bias_gradient", ell + 1, np.asarray(gradients.biases[ell]),
                      split.bias_gradients[ell], bounds.bias_gradients[ell]))
    if all(claimed.shape == exact_part.shape for _, _, claimed, exact_part, _ in parts):
        # One pass over every entry; the per-part comparison below, which
        # locates a violation, runs only when there is one.
        together = compare(RESULT_ID,
                           claimed=np.concatenate([p[2].ravel() for p in parts]),
                           exact=SplitExact(np.concatenate([p[3].hi.ravel() for p in parts]),
                                            np.concatenate([p[3].lo.ravel() for p in parts])),
                           bound=np.concatenate([p[4].ravel() for p in parts]),
                           quantity="gradient")
        if isinstance(together, Holds):
            return together
    B = int(np.shape(inputs)[0])
    verdicts = [compare(RESULT_ID, claimed=claimed, exact=exact_part, bound=bound,
                        quantity=quantity, layer_index=layer, batch_size=B)
                for quantity, layer, claimed, exact_part, bound in parts]
    worst = worst_of(verdicts)
    assert isinstance(worst, (Holds, Violated))
    return worst


def _as_parameters(gradients: object) -> Parameters:
    """``gradients`` as :class:`spec.Parameters`, or a TypeError saying what is wrong."""
    if isinstance(gradients, Parameters):
        return gradients
    if isinstance(gradients, (tuple, list)) and len(gradients) == 2:
        weights, biases = gradients
        return Parameters(tuple(np.asarray(w) for w in weights),
                          tuple(np.asarray(b) for b in biases))
    raise TypeError(f"gradients: expected spec.Parameters or a pair (weight "
                    f"gradients, bias gradients), got {type(gradients).__name__}")
