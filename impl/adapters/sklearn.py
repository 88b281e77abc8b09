r"""The ``sklearn`` backend: scikit-learn's own MLP backpropagation.

The subject is the private method ``BaseMultilayerPerceptron._backprop`` of
:class:`sklearn.neural_network.MLPRegressor` (squared error) and
:class:`~sklearn.neural_network.MLPClassifier` (softmax cross-entropy): the
hand-written forward and backward pass their ``lbfgs``, ``sgd`` and ``adam``
solvers train with. It returns the loss together with ``coef_grads`` and
``intercept_grads``. The estimator is never fitted: the adapter sets the
attributes ``_backprop`` reads (``coefs_``, ``intercepts_``, ``n_layers_``,
``n_outputs_``, ``out_activation_``) from the network, with ``alpha=0`` so no
L2 term enters the loss or the gradients.

What scikit-learn can represent is declared in
:data:`SKLEARN_CONSTRAINTS`:

* one activation for every hidden layer, one of identity, logistic
  (sigmoid), tanh and relu;
* for squared error an identity output layer (``MLPRegressor``);
* for cross-entropy an identity last layer whose outputs are the logits
  that ``MLPClassifier`` passes through softmax (``out_activation_ =
  "softmax"``) and at least two outputs: with one output scikit-learn uses
  a logistic unit and binary log-loss, which is not the spec's softmax
  cross-entropy of one logit (identically zero);
* cross-entropy targets that sum to one: ``_backprop`` starts backpropagation
  from :math:`\delta_L = p - y`, the gradient only when
  :math:`\sum_i y_i = 1` (in general it is :math:`p\sum_i y_i - y`).

Conventions converted here, each one transformation applied alike to the
loss and every gradient:

* ``coefs_[l]`` is :math:`W_\ell^\top` (``n_{l-1} x n_l``): weights are
  transposed going in and weight gradients transposed coming out.
* Squared error: ``_backprop`` reports
  :math:`\frac{1}{B n_L}\sum_k \tfrac12\lVert a^{(k)}-y^{(k)}\rVert^2`
  (``squared_loss`` averages over outputs as well as examples), the spec's
  loss divided by :math:`n_L`. The adapter multiplies the loss **and** the
  gradients by :math:`n_L`. scikit-learn's gradients are those of the
  spec's loss, not of its own reported loss, so for :math:`n_L > 1` the
  converted gradients come out :math:`n_L` times too large and the suite
  reports it: the loss and gradient ``_backprop`` returns disagree by that
  factor (scikit-learn issue 8349, open since 2017). No single factor can
  make both agree with the spec, and adjusting one without the other would
  hide the inconsistency.
* Softmax cross-entropy: ``log_loss`` is already
  :math:`\frac1B\sum_k -\sum_i y_i\log p_i`; factor 1. It clips each
  probability to :math:`[\epsilon, 1-\epsilon]` (machine epsilon of the
  dtype) before the logarithm, which the gradient does not see; that is
  judged as it is.

Arrays are computed in the dtype they arrive in (float64, or float32 in a
``--dtype float32`` run): ``_backprop`` works in the dtype of ``coefs_``.
scikit-learn is imported when the backend is created.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability, NetworkConstraints
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.errors import BackendLimitError, BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[sklearn]'"

HIDDEN_ACTIVATIONS: dict[Activation, str] = {
    Activation.IDENTITY: "identity",
    Activation.SIGMOID: "logistic",
    Activation.TANH: "tanh",
    Activation.RELU: "relu",
}
"""scikit-learn's name for each hidden activation it implements."""

SKLEARN_CONSTRAINTS = NetworkConstraints(
    activations=frozenset(HIDDEN_ACTIVATIONS),
    output_activations={Loss.SQUARED_ERROR: frozenset({Activation.IDENTITY}),
                        Loss.SOFTMAX_CROSS_ENTROPY: frozenset({Activation.IDENTITY})},
    same_hidden_activation=True,
    targets_sum_to_one=True,
    min_output_width={Loss.SOFTMAX_CROSS_ENTROPY: 2},
)
"""The networks ``MLPRegressor`` and ``MLPClassifier`` can represent.

The classifier needs two classes (with one it switches to a logistic output);
the regressor accepts a single output."""


def _import_neural_network() -> Any:
    """``sklearn.neural_network``, or :class:`BackendLoadError`."""
    try:
        module = importlib.import_module("sklearn.neural_network")
    except ImportError as error:
        raise BackendLoadError(
            "the sklearn backend needs scikit-learn, which is not installed; "
            f"install it with: {INSTALL_HINT}") from error
    if not hasattr(module.MLPRegressor, "_backprop"):
        raise BackendLoadError(
            "the sklearn backend calls MLPRegressor._backprop, which this "
            "scikit-learn does not have; install a supported version with: "
            f"{INSTALL_HINT}")
    logger.info("scikit-learn loaded from %s", module.__file__)
    return module


def unsupported_reason(network: Network) -> str | None:
    """Why scikit-learn's MLP cannot represent ``network``, or ``None``."""
    hidden = network.activations[:-1]
    if any(a not in HIDDEN_ACTIVATIONS for a in hidden):
        return (f"hidden activations {[a.value for a in hidden]}: scikit-learn "
                f"has only {[a.value for a in HIDDEN_ACTIVATIONS]}")
    if len(set(hidden)) > 1:
        return (f"hidden activations {[a.value for a in hidden]}: scikit-learn "
                "uses one activation for every hidden layer")
    if network.activations[-1] is not Activation.IDENTITY:
        return (f"output activation {network.activations[-1].value}: scikit-learn's "
                "last layer is affine (identity, then softmax for cross-entropy)")
    if network.loss is Loss.SOFTMAX_CROSS_ENTROPY and network.widths[-1] < 2:
        return ("softmax cross-entropy with one output: scikit-learn uses a "
                "logistic unit and binary log-loss there")
    return None


@dataclass
class SklearnBackend:
    """scikit-learn's ``_backprop`` on an unfitted MLP with ``alpha=0``."""

    name: str = "sklearn"
    capabilities: frozenset[Capability] = field(default=frozenset(), repr=False)
    constraints: NetworkConstraints = field(default=SKLEARN_CONSTRAINTS, repr=False)
    neural_network: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.neural_network is None:
            self.neural_network = _import_neural_network()

    def _estimator(self, network: Network, parameters: Parameters,
                   dtype: np.dtype[Any]) -> Any:
        """An unfitted MLP carrying ``network``'s parameters, ready for backprop."""
        hidden = network.activations[:-1]
        activation = HIDDEN_ACTIVATIONS[hidden[0]] if hidden else "identity"
        if network.loss is Loss.SQUARED_ERROR:
            estimator = self.neural_network.MLPRegressor(
                hidden_layer_sizes=network.widths[1:-1], activation=activation,
                alpha=0.0)
            estimator.out_activation_ = "identity"
        else:
            estimator = self.neural_network.MLPClassifier(
                hidden_layer_sizes=network.widths[1:-1], activation=activation,
                alpha=0.0)
            estimator.out_activation_ = "softmax"
        estimator.n_layers_ = network.depth + 1
        estimator.n_outputs_ = network.widths[-1]
        estimator.coefs_ = [np.array(W, dtype=dtype).T.copy()
                            for W in parameters.weights]
        estimator.intercepts_ = [np.array(b, dtype=dtype) for b in parameters.biases]
        return estimator

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """``_backprop``'s loss and gradients, scaled by one declared factor.

        Raises
        ------
        BackendLimitError
            ``network`` is outside :data:`SKLEARN_CONSTRAINTS`.
        """
        reason = unsupported_reason(network)
        if reason is not None:
            raise BackendLimitError(
                f"the sklearn backend cannot represent network "
                f"{network.describe()!r}: {reason}; draw networks from its "
                "constraints attribute")
        dtype = np.asarray(inputs).dtype

        # The buffers _fit allocates before calling _backprop.
        estimator = self._estimator(network, parameters, dtype)
        X, Y = np.array(inputs, dtype=dtype), np.array(targets, dtype=dtype)
        activations: list[Any] = [X] + [None] * network.depth
        deltas: list[Any] = [None] * network.depth
        coef_grads = [np.empty(c.shape, dtype=dtype) for c in estimator.coefs_]
        intercept_grads = [np.empty(b.shape, dtype=dtype)
                           for b in estimator.intercepts_]

        loss, coef_grads, intercept_grads = estimator._backprop(
            X, Y, None, activations, deltas, coef_grads, intercept_grads)

        # One factor for the loss and every gradient (see the module notes).
        factor = (network.widths[-1] if network.loss is Loss.SQUARED_ERROR else 1)
        return LossAndGradients(
            float(loss) * factor,
            Parameters(tuple(np.array(g.T * factor, dtype=dtype) for g in coef_grads),
                       tuple(np.array(g * factor, dtype=dtype)
                             for g in intercept_grads)))
