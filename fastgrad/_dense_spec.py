"""Activation, loss and status codes shared by the dense-network kernels.

Kernels take small integers, not strings, so that one compiled specialisation
serves every network.
"""

LINEAR = 0
RELU = 1
LEAKY_RELU = 2
TANH = 3
SIGMOID = 4

ACTIVATIONS = {
    "linear": LINEAR,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "tanh": TANH,
    "sigmoid": SIGMOID,
}

BINARY_CROSS_ENTROPY = 0
SOFTMAX_CROSS_ENTROPY = 1
MSE = 2

LOSSES = {
    "binary_cross_entropy": BINARY_CROSS_ENTROPY,
    "softmax_cross_entropy": SOFTMAX_CROSS_ENTROPY,
    "mse": MSE,
}

#: Slope of leaky ReLU for negative pre-activations.
LEAKY_SLOPE = 0.01

#: Status codes the perturbation kernels return per component.
STATUS_OK = 0
#: A perturbed cost (or cost difference) is not finite.
STATUS_NON_FINITE = 1
