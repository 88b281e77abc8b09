"""The adapter that lets ``python -m conformance`` call ``my_mlp``."""

import my_mlp

from impl import function_backend


@function_backend("my-mlp")
def backend(network, parameters, inputs, targets):
    return my_mlp.loss_and_grads(
        parameters.weights,
        parameters.biases,
        inputs,
        targets,
        activations=[activation.value for activation in network.activations],
        loss=network.loss.value,
    )
