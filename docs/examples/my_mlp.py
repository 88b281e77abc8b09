"""A multilayer perceptron in plain numpy, with its gradients written by hand.

This file knows nothing about backprop-spec: it is the kind of code the
tutorial judges. Layer ``k`` computes ``z = a_prev @ W.T + b`` and
``a = activation(z)`` for a batch stored one example per row; the loss is
the mean over the batch of the example losses.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), never overflowing for either sign of z."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activate(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The activation and its derivative, elementwise."""
    if name == "identity":
        return z, np.ones_like(z)
    if name == "sigmoid":
        e = np.exp(-np.abs(z))
        return sigmoid(z), e / (1.0 + e) ** 2
    if name == "tanh":
        t = np.tanh(z)
        return t, 1.0 - t * t
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(float)
    if name == "leaky_relu":
        slope = np.where(z > 0, 1.0, LEAKY_SLOPE)
        return slope * z, slope
    if name == "softplus":
        return np.logaddexp(0.0, z), sigmoid(z)
    if name == "elu":
        negative = np.minimum(z, 0.0)
        value = np.where(z > 0, z, np.expm1(negative))
        return value, np.where(z > 0, 1.0, np.exp(negative))
    raise ValueError(f"unknown activation {name!r}")


def loss_and_output_gradient(
    loss: str, a: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean loss over the rows and its gradient with respect to ``a``."""
    batch = a.shape[0]
    if loss == "squared_error":
        value = float(0.5 * ((a - y) ** 2).sum(axis=1).mean())
        return value, (a - y) / batch
    if loss == "softmax_cross_entropy":
        shifted = a - a.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        value = float(-(y * log_p).sum(axis=1).mean())
        gradient = np.exp(log_p) * y.sum(axis=1, keepdims=True) - y
        return value, gradient / batch
    raise ValueError(f"unknown loss {loss!r}")


def loss_and_grads(weights, biases, X, Y, activations, loss):
    """The batch loss and its gradients, one array per layer.

    ``weights[k]`` has shape ``(n_out, n_in)``, ``biases[k]`` shape
    ``(n_out,)``; ``X`` is ``(batch, n_in)`` and ``Y`` is ``(batch, n_out)``
    of the last layer. Returns ``(loss, weight_gradients, bias_gradients)``.
    """
    # Forward: keep every layer's input and derivative for the way back.
    inputs, derivatives = [], []
    a = X
    for W, b, name in zip(weights, biases, activations):
        inputs.append(a)
        a, derivative = activate(name, a @ W.T + b)
        derivatives.append(derivative)
    value, G = loss_and_output_gradient(loss, a, Y)

    # Backward: delta = sigma'(z) * G, then hand G to the layer below.
    weight_gradients, bias_gradients = [], []
    for k in reversed(range(len(weights))):
        W, a_prev, derivative = weights[k], inputs[k], derivatives[k]
        delta = derivative * G
        weight_gradients.insert(0, delta.T @ a_prev)
        bias_gradients.insert(0, delta.sum(axis=0))
        G = delta @ W
    return value, weight_gradients, bias_gradients
