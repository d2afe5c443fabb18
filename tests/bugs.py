"""A catalogue of classic back-prop bugs, each a small variation of one correct back-prop.

:class:`Backprop` is the correct back-prop of a dense network, written the
course's way (``dZ`` of the output unscaled, ``1/m`` in ``dW`` and ``db``) and
split into small overridable steps: the output's ``dZ``, the activation slope,
``dW``, ``db``, the L2 penalty gradient, ``W.T @ dZ``, the dropout mask, the
cached layer input, and a last look at the finished gradients. Each bug in
:data:`CATALOGUE` overrides one step and says which blocks it corrupts
(:meth:`Backprop.expected`), so a test can ask the checker to find exactly
those blocks, and no others.

Every back-prop here is a callable ``(params, X, Y, config) -> grads`` with
``grads`` holding ``dW1, db1, ...``; ``config`` is a :class:`Config`. The
correct one is checked against ``tests/reference.py`` (an independent plain
NumPy back-prop) in ``tests/test_bug_catalogue.py``, and each bug's expected
blocks are checked against the exact difference between the buggy and the
correct gradient, so a wrong expectation is never blamed on the checker.

Also here: the architectures the catalogue runs on, seeded problems for them,
and the two ways of checking (``check_generic``: ``fastgrad.gradcheck`` on a
cost built from ``tests/reference.py``; ``check_dense``: ``DenseNet.gradcheck``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import fastgrad
import reference

__all__ = [
    "Config",
    "Architecture",
    "Backprop",
    "CORRECT",
    "CATALOGUE",
    "ARCHITECTURES",
    "make_problem",
    "dropout_scales",
    "reference_cost",
    "check_generic",
    "check_dense",
    "layout_of",
    "all_blocks",
    "truly_corrupted_blocks",
    "NETWORKS",
    "ACTIVATIONS",
    "kink_problem",
    "course_problem",
]


# --------------------------------------------------------------------------- #
# Networks and problems
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Config:
    """What a back-prop needs to know about the network besides params and data."""

    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    l2: float = 0.0
    dropout_scales: tuple[np.ndarray, ...] | None = None

    @property
    def n_layers(self) -> int:
        return len(self.activations)


@dataclass(frozen=True)
class Architecture:
    """A network of the catalogue: sizes, activations (one per layer), loss, L2, dropout."""

    name: str
    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    l2: float = 0.0
    dropout: float | None = None
    dropout_seed: int = 0
    m: int = 6

    @property
    def n_layers(self) -> int:
        return len(self.activations)

    def dense_net(self):
        """The same network as a ``fastgrad.DenseNet``."""
        from fastgrad.dense import DenseNet

        return DenseNet(
            list(self.layer_sizes), list(self.activations), self.loss, l2=self.l2,
            dropout=self.dropout, dropout_seed=self.dropout_seed,
        )


def dropout_scales(layer_sizes, dropout, dropout_seed, m) -> tuple[np.ndarray, ...] | None:
    """``mask / keep_prob`` per hidden layer, drawn as ``DenseNet.dropout_masks`` draws them."""
    if dropout is None:
        return None
    rng = np.random.default_rng(dropout_seed)
    keep = 1.0 - dropout
    return tuple((rng.random((n, m)) < keep) / keep for n in layer_sizes[1:-1])


def make_problem(arch: Architecture, seed: int):
    """Seeded ``(params, X, Y, config)`` for ``arch``.

    Weights are scaled by ``1/sqrt(n_in)`` and biases are non-zero (so a bias
    bug shows); targets suit the loss: 0/1 labels (BCE), one-hot columns
    (softmax), standard normal values (MSE).
    """
    rng = np.random.default_rng(seed)
    sizes = arch.layer_sizes
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.standard_normal((sizes[l], sizes[l - 1])) * (1.5 / np.sqrt(sizes[l - 1]))
        params[f"b{l}"] = rng.standard_normal((sizes[l], 1)) * 0.5
    X = rng.standard_normal((sizes[0], arch.m))
    n_out = sizes[-1]
    if arch.loss == "binary_cross_entropy":
        Y = (rng.random((n_out, arch.m)) < 0.5).astype(float)
    elif arch.loss == "softmax_cross_entropy":
        Y = np.eye(n_out)[:, rng.integers(0, n_out, arch.m)]
    else:
        Y = rng.standard_normal((n_out, arch.m))
    config = Config(
        sizes, arch.activations, arch.loss, arch.l2,
        dropout_scales(sizes, arch.dropout, arch.dropout_seed, arch.m),
    )
    return params, X, Y, config


def layout_of(config: Config) -> fastgrad.Layout:
    """``W1, b1, W2, ...`` with their shapes, the course's order."""
    names, shapes = [], []
    for l in range(1, len(config.layer_sizes)):
        names += [f"W{l}", f"b{l}"]
        shapes += [(config.layer_sizes[l], config.layer_sizes[l - 1]), (config.layer_sizes[l], 1)]
    return fastgrad.Layout(tuple(names), tuple(shapes))


def all_blocks(config: Config) -> frozenset[str]:
    return frozenset(layout_of(config).names)


def reference_cost(config: Config, X: np.ndarray, Y: np.ndarray):
    """``J(theta)`` from ``tests/reference.py``, for the generic engine."""
    layout = layout_of(config)
    scales = None if config.dropout_scales is None else list(config.dropout_scales)

    def cost(theta: np.ndarray) -> float:
        params = fastgrad.unpack(theta, layout)
        return reference.cost(params, X, Y, list(config.activations), config.loss, config.l2, scales)

    return cost


def check_generic(backprop, params, X, Y, config, **options) -> fastgrad.Report:
    """``fastgrad.gradcheck`` of ``backprop``'s gradient against the reference cost."""
    theta, layout = fastgrad.pack(params)
    grads = backprop(params, X, Y, config)
    return fastgrad.gradcheck(reference_cost(config, X, Y), grads, theta, layout=layout, **options)


def check_dense(backprop, arch: Architecture, params, X, Y, config, **options) -> fastgrad.Report:
    """``DenseNet.gradcheck`` of ``backprop``'s gradient (same masks as the net's)."""
    net = arch.dense_net()
    grads = backprop(params, X, Y, config)
    return net.gradcheck(params, X, Y, grads, **options)


def truly_corrupted_blocks(backprop, params, X, Y, config, *, rtol: float = 1e-4) -> frozenset[str]:
    """Blocks where ``backprop``'s gradient really differs from the correct one.

    The ground truth the checker's localisation is held to: a block is
    corrupted when its relative difference from the exact gradient exceeds
    ``rtol`` (far above any checker threshold). Untouched blocks are computed
    by the same arithmetic as the correct back-prop, so they agree exactly.
    """
    wrong = backprop(params, X, Y, config)
    right = CORRECT(params, X, Y, config)
    corrupted = set()
    for name in right:
        difference = fastgrad.relative_difference(right[name].ravel(), wrong[name].ravel())
        if difference > rtol:
            corrupted.add(name[1:])
        elif difference != 0.0:
            raise AssertionError(f"{backprop.name}: block {name[1:]} differs only slightly ({difference:.3g})")
    return frozenset(corrupted)


# --------------------------------------------------------------------------- #
# The correct back-prop, in overridable steps
# --------------------------------------------------------------------------- #


def _layers_up_to(t: int) -> frozenset[str]:
    return frozenset(name for l in range(1, t + 1) for name in (f"W{l}", f"b{l}"))


def _hidden_layers(config: Config, activations=None) -> list[int]:
    """Hidden layers (1-based), optionally only those with one of ``activations``."""
    layers = range(1, config.n_layers)
    return [l for l in layers if activations is None or config.activations[l - 1] in activations]


class Backprop:
    """The correct back-prop; every bug in the catalogue overrides one of its steps.

    Attributes
    ----------
    name : str
        Short identifier (table rows, test ids).
    description : str
        The mistake, as a person would make it.
    """

    name = "correct"
    description = "the correct back-prop"

    # -- What the bug needs and what it breaks ------------------------------ #
    def target(self, config: Config) -> int | None:
        """The layer the bug is planted in, or None when it cannot be planted in ``config``."""
        return 0

    def applies(self, config: Config) -> bool:
        return self.target(config) is not None

    def expected(self, config: Config) -> frozenset[str]:
        """The blocks whose gradient the bug corrupts (the correct back-prop: none)."""
        return frozenset()

    # -- The back-prop ------------------------------------------------------- #
    def __call__(self, params, X, Y, config: Config) -> dict[str, np.ndarray]:
        if not self.applies(config):
            raise ValueError(f"bug {self.name!r} cannot be planted in this network")
        L, m = config.n_layers, X.shape[1]
        scales = config.dropout_scales
        caches = reference.forward(params, X, list(config.activations), None if scales is None else list(scales))
        Z = [None] + [cache[1] for cache in caches]
        A = [X] + [cache[2] for cache in caches]
        dZ = self.output_delta(config, Z[L], A[L], Y)
        grads = {}
        for l in range(L, 0, -1):
            W = params[f"W{l}"]
            A_prev = self.layer_input(config, l, A)
            grads[f"dW{l}"] = self.weight_gradient(config, l, dZ, A_prev, m) + self.penalty_gradient(config, l, W, m)
            grads[f"db{l}"] = self.bias_gradient(config, l, dZ, m)
            if l > 1:
                dA = self.backward_through_weights(config, l, W, dZ)
                if scales is not None:
                    dA = self.backward_through_dropout(config, l - 1, dA, scales[l - 2])
                dZ = dA * self.slope(config, l - 1, Z[l - 1], A[l - 1])
        grads = {name: grads[name] for l in range(1, L + 1) for name in (f"dW{l}", f"db{l}")}
        return self.finish(config, grads)

    # -- The steps ----------------------------------------------------------- #
    def output_delta(self, config: Config, Z: np.ndarray, A: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """dJ/dZ_L times m: ``A - Y`` (BCE on sigmoid, softmax cross-entropy), ``(A - Y) g'(Z)`` (MSE)."""
        if config.loss == "binary_cross_entropy":
            return A - Y
        if config.loss == "softmax_cross_entropy":
            return _softmax(Z) - Y
        return (A - Y) * self.slope(config, config.n_layers, Z, A)

    def slope(self, config: Config, l: int, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        """g'(Z_l) of layer l's activation (A_l is after dropout, for hidden layers)."""
        return reference.activation_slope(config.activations[l - 1], Z)

    def layer_input(self, config: Config, l: int, A: list[np.ndarray]) -> np.ndarray:
        """The cached input of layer l, A_{l-1}."""
        return A[l - 1]

    def weight_gradient(self, config: Config, l: int, dZ, A_prev, m: int) -> np.ndarray:
        return dZ @ A_prev.T / m

    def bias_gradient(self, config: Config, l: int, dZ, m: int) -> np.ndarray:
        return dZ.sum(axis=1, keepdims=True) / m

    def penalty_gradient(self, config: Config, l: int, W, m: int) -> np.ndarray:
        """Gradient of ``l2/(2m) ||W_l||^2``."""
        return config.l2 / m * W

    def backward_through_weights(self, config: Config, l: int, W, dZ) -> np.ndarray:
        """dA_{l-1} = W_l.T dZ_l."""
        return W.T @ dZ

    def backward_through_dropout(self, config: Config, l: int, dA, scale) -> np.ndarray:
        """Hidden layer l's dropout (mask / keep_prob) applied to dA_l."""
        return dA * scale

    def finish(self, config: Config, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return grads


def _softmax(Z: np.ndarray) -> np.ndarray:
    e = np.exp(Z - Z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


#: The correct back-prop.
CORRECT = Backprop()


# --------------------------------------------------------------------------- #
# The bugs
# --------------------------------------------------------------------------- #


class _OneLayerBug(Backprop):
    """A bug in one layer's own dW or db: corrupts exactly that block."""

    block = "W"  # or "b"

    def expected(self, config):
        return frozenset({f"{self.block}{self.target(config)}"})


class WeightGradientDoubled(_OneLayerBug):
    name = "dW2_doubled"
    description = "dW2 multiplied by 2 (the course's first planted bug)"

    def target(self, config):
        return 2

    def weight_gradient(self, config, l, dZ, A_prev, m):
        factor = 2.0 if l == self.target(config) else 1.0
        return factor * super().weight_gradient(config, l, dZ, A_prev, m)


class BiasMissingInverseM(_OneLayerBug):
    name = "db1_missing_1/m"
    description = "db1 = sum(dZ1) without the 1/m"
    block = "b"

    def target(self, config):
        return 1

    def bias_gradient(self, config, l, dZ, m):
        scale = m if l == self.target(config) else 1
        return scale * super().bias_gradient(config, l, dZ, m)


class WeightGradientSignFlipped(_OneLayerBug):
    name = "dW_output_sign_flipped"
    description = "the output layer's dW with the sign flipped (A_prev dZ written as -dZ A_prev.T)"

    def target(self, config):
        return config.n_layers

    def weight_gradient(self, config, l, dZ, A_prev, m):
        sign = -1.0 if l == self.target(config) else 1.0
        return sign * super().weight_gradient(config, l, dZ, A_prev, m)


class BiasSummedOverAllAxes(_OneLayerBug):
    name = "db1_summed_over_all_axes"
    description = "db1 = sum(dZ1) / m over both axes (axis=1 forgotten), broadcast to every unit"
    block = "b"

    def target(self, config):
        return 1

    def bias_gradient(self, config, l, dZ, m):
        if l != self.target(config):
            return super().bias_gradient(config, l, dZ, m)
        return np.full((dZ.shape[0], 1), dZ.sum() / m)


class BiasMeanOverUnits(_OneLayerBug):
    name = "db_mean_over_units"
    description = "the last hidden layer's db averaged over its units (axis=0) instead of summed over examples"
    block = "b"

    def target(self, config):
        return config.n_layers - 1

    def bias_gradient(self, config, l, dZ, m):
        if l != self.target(config):
            return super().bias_gradient(config, l, dZ, m)
        return np.full((dZ.shape[0], 1), dZ.mean(axis=0).sum() / m)


class OffByOneCache(_OneLayerBug):
    name = "off_by_one_layer_cache"
    description = "dW_l computed from A_{l-2} instead of A_{l-1} (the wrong cache entry)"

    def target(self, config):
        # A_{l-2} must have A_{l-1}'s shape for the mistake to run at all.
        sizes = config.layer_sizes
        found = [l for l in range(2, config.n_layers + 1) if sizes[l - 2] == sizes[l - 1]]
        return found[-1] if found else None

    def layer_input(self, config, l, A):
        return A[l - 2] if l == self.target(config) else A[l - 1]


class _SlopeBug(Backprop):
    """A wrong activation slope in hidden layer t: corrupts every block of layers 1..t."""

    activations: tuple[str, ...] | None = None

    def target(self, config):
        layers = _hidden_layers(config, self.activations)
        if self.activations is None:
            layers = [l for l in layers if config.activations[l - 1] != "linear"]
        return layers[-1] if layers else None

    def expected(self, config):
        return _layers_up_to(self.target(config))

    def slope(self, config, l, Z, A):
        if l == self.target(config):
            return self.wrong_slope(config.activations[l - 1], Z, A)
        return super().slope(config, l, Z, A)

    def wrong_slope(self, activation, Z, A):
        raise NotImplementedError


class MissingActivationDerivative(_SlopeBug):
    name = "activation_derivative_missing"
    description = "the last non-linear hidden layer back-propagated as if linear (dZ = dA)"

    def wrong_slope(self, activation, Z, A):
        return np.ones_like(Z)


class SlopeFromActivation(_SlopeBug):
    name = "slope_from_A_not_Z"
    description = (
        "g'(A) instead of g'(Z) in the last tanh/sigmoid hidden layer "
        "(for ReLU this is harmless: A > 0 exactly where Z > 0)"
    )
    activations = ("tanh", "sigmoid")

    def wrong_slope(self, activation, Z, A):
        return reference.activation_slope(activation, A)


class SigmoidSlopeAsS(_SlopeBug):
    name = "sigmoid_slope_s"
    description = "sigmoid'(z) written as s instead of s(1 - s)"
    activations = ("sigmoid",)

    def wrong_slope(self, activation, Z, A):
        return reference.activation("sigmoid", Z)


class TanhSlopeOneMinusA(_SlopeBug):
    name = "tanh_slope_1-a"
    description = "tanh'(z) written as 1 - a instead of 1 - a^2"
    activations = ("tanh",)

    def wrong_slope(self, activation, Z, A):
        return 1.0 - np.tanh(Z)


class LeakyReluSlopeZero(_SlopeBug):
    name = "leaky_relu_slope_0"
    description = "leaky ReLU's dZ with slope 0 for z <= 0 (the ReLU derivative reused)"
    activations = ("leaky_relu",)

    def wrong_slope(self, activation, Z, A):
        return (Z > 0).astype(float)


class TransposedWeight(Backprop):
    name = "transposed_W_in_dA"
    description = "dA_{l-1} = W_l dZ_l instead of W_l.T dZ_l (runs only when W_l is square)"

    def target(self, config):
        sizes = config.layer_sizes
        found = [l for l in range(2, config.n_layers + 1) if sizes[l] == sizes[l - 1]]
        return found[-1] if found else None

    def expected(self, config):
        return _layers_up_to(self.target(config) - 1)

    def backward_through_weights(self, config, l, W, dZ):
        return W @ dZ if l == self.target(config) else W.T @ dZ


class SwappedLayerGradients(Backprop):
    name = "swapped_layer_gradients"
    description = "the gradients of two layers of the same shape swapped (dW or db of l and l')"

    def _pair(self, config):
        layout = layout_of(config)
        shapes = dict(zip(layout.names, layout.shapes))
        for kind in ("W", "b"):
            for i in range(1, config.n_layers + 1):
                for j in range(i + 1, config.n_layers + 1):
                    if shapes[f"{kind}{i}"] == shapes[f"{kind}{j}"]:
                        return f"{kind}{i}", f"{kind}{j}"
        return None

    def target(self, config):
        return self._pair(config)

    def expected(self, config):
        return frozenset(self._pair(config))

    def finish(self, config, grads):
        first, second = self._pair(config)
        grads = dict(grads)
        grads["d" + first], grads["d" + second] = grads["d" + second], grads["d" + first]
        return grads


class OutputDeltaWithoutY(Backprop):
    name = "output_dZ_without_Y"
    description = "the output's dZ without subtracting Y (softmax(Z) or A instead of A - Y)"

    def expected(self, config):
        return all_blocks(config)

    def output_delta(self, config, Z, A, Y):
        return super().output_delta(config, Z, A, np.zeros_like(Y))


class InverseMTwice(Backprop):
    name = "1/m_applied_twice"
    description = "dZ_L already divided by m, and dW, db divide by m again"

    def expected(self, config):
        return all_blocks(config)

    def output_delta(self, config, Z, A, Y):
        return super().output_delta(config, Z, A, Y) / Y.shape[1]


class DropoutMaskNotApplied(Backprop):
    name = "dropout_mask_not_applied"
    description = "dropout's mask left out of back-prop (dA not multiplied by mask / keep_prob)"

    def target(self, config):
        return None if config.dropout_scales is None else config.n_layers - 1

    def expected(self, config):
        return _layers_up_to(config.n_layers - 1)

    def backward_through_dropout(self, config, l, dA, scale):
        return dA


class DropoutNotRescaled(DropoutMaskNotApplied):
    name = "dropout_not_divided_by_keep_prob"
    description = "dropout's mask applied in back-prop but not divided by keep_prob"

    def backward_through_dropout(self, config, l, dA, scale):
        return dA * (scale > 0)


class MissingPenalty(Backprop):
    name = "l2_term_missing"
    description = "the L2 term l2/m W left out of dW"

    def target(self, config):
        return None if config.l2 <= 0 else 0

    def expected(self, config):
        return frozenset(f"W{l}" for l in range(1, config.n_layers + 1))

    def penalty_gradient(self, config, l, W, m):
        return np.zeros_like(W)


class PenaltyWrongFactor(MissingPenalty):
    name = "l2_term_halved"
    description = "the L2 term written l2/(2m) W (the 1/2 of the penalty kept after differentiating)"

    def penalty_gradient(self, config, l, W, m):
        return config.l2 / (2 * m) * W


class PenaltyOnBiases(MissingPenalty):
    name = "l2_term_on_biases"
    description = (
        "the L2 term also added to db (l2/m b): invisible at the usual zero-bias initialisation, "
        "seen after training"
    )

    def expected(self, config):
        return frozenset(f"b{l}" for l in range(1, config.n_layers + 1))

    def penalty_gradient(self, config, l, W, m):
        return config.l2 / m * W

    def __call__(self, params, X, Y, config):
        grads = super().__call__(params, X, Y, config)
        m = X.shape[1]
        return {
            name: value + config.l2 / m * params[name[1:]] if name.startswith("db") else value
            for name, value in grads.items()
        }


#: The catalogue, one instance per bug.
CATALOGUE: tuple[Backprop, ...] = (
    WeightGradientDoubled(),
    BiasMissingInverseM(),
    WeightGradientSignFlipped(),
    BiasSummedOverAllAxes(),
    BiasMeanOverUnits(),
    OffByOneCache(),
    MissingActivationDerivative(),
    SlopeFromActivation(),
    SigmoidSlopeAsS(),
    TanhSlopeOneMinusA(),
    LeakyReluSlopeZero(),
    TransposedWeight(),
    SwappedLayerGradients(),
    OutputDeltaWithoutY(),
    InverseMTwice(),
    DropoutMaskNotApplied(),
    DropoutNotRescaled(),
    MissingPenalty(),
    PenaltyWrongFactor(),
    PenaltyOnBiases(),
)


# --------------------------------------------------------------------------- #
# The architectures the catalogue runs on
# --------------------------------------------------------------------------- #

#: Each hidden activation appears in at least three of them; each has two
#: equal hidden layers (a square weight, two same-shaped bias blocks), so the
#: shape-dependent bugs can be planted; L2 and dropout each on three.
ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("4-5-5-1 relu/tanh BCE", (4, 5, 5, 1), ("relu", "tanh", "sigmoid"), "binary_cross_entropy"),
    Architecture(
        "6-8-8-3 tanh/leaky softmax L2 dropout", (6, 8, 8, 3), ("tanh", "leaky_relu", "linear"),
        "softmax_cross_entropy", l2=0.3, dropout=0.25, dropout_seed=3,
    ),
    Architecture(
        "5-7-7-2 leaky/sigmoid MSE L2 dropout", (5, 7, 7, 2), ("leaky_relu", "sigmoid", "sigmoid"), "mse",
        l2=0.2, dropout=0.2, dropout_seed=5,
    ),
    Architecture(
        "3-6-6-6-2 sigmoid/relu/tanh MSE dropout", (3, 6, 6, 6, 2), ("sigmoid", "relu", "tanh", "linear"), "mse",
        dropout=0.3, dropout_seed=7,
    ),
    Architecture(
        "4-6-6-1 sigmoid/leaky BCE L2", (4, 6, 6, 1), ("sigmoid", "leaky_relu", "sigmoid"), "binary_cross_entropy",
        l2=0.5,
    ),
)


# --------------------------------------------------------------------------- #
# Problems for the no-false-failure checks
# --------------------------------------------------------------------------- #

ACTIVATIONS = ("linear", "relu", "leaky_relu", "tanh", "sigmoid")


def _networks():
    """(sizes, activations, loss) of the no-false-failure networks: every hidden activation with every loss,
    and MSE on every output activation."""
    nets = []
    for hidden in ACTIVATIONS:
        nets.append(((3, 4, 4, 1), (hidden, hidden, "sigmoid"), "binary_cross_entropy"))
        nets.append(((3, 4, 4, 3), (hidden, hidden, "linear"), "softmax_cross_entropy"))
        nets.append(((3, 4, 4, 2), (hidden, hidden, "linear"), "mse"))
    for output in ("relu", "leaky_relu", "tanh", "sigmoid"):
        nets.append(((3, 4, 2), ("tanh", output), "mse"))
    return nets


#: Networks on which a correct back-prop must pass at every seed.
NETWORKS = _networks()


def kink_problem(activation: str, seed: int, m: int = 4):
    """A 3-4-4-2 network with pre-activations exactly on the kink (z = 0) in both hidden layers.

    Dyadic weights and small integer inputs make every product and sum exact, so
    choosing b_l[i] = -(W_l A_{l-1})[i, e] puts unit i at z = 0 for example e.
    Units 0 and 1 of each hidden layer sit on a kink; units 2 and 3 do not, so
    every block keeps components a bug can show in.
    """
    rng = np.random.default_rng(seed)
    arch = Architecture("kinks", (3, 4, 4, 2), (activation, activation, "linear"), "mse", m=m)
    W1 = rng.integers(-4, 5, (4, 3)) / 4.0
    X = rng.integers(-2, 3, (3, m)).astype(float)
    # Units 2 and 3 are kept alive for every example (|W1 x| <= 6), so a ReLU layer
    # still has components off the kink with non-zero gradients.
    b1 = np.full((4, 1), 6.25)
    b1[:2] = -(W1 @ X)[:2, [1]]  # example 1 on the kink of units 0 and 1 of layer 1
    A1 = reference.activation(activation, W1 @ X + b1)
    W2 = rng.integers(-4, 5, (4, 4)) / 4.0
    b2 = (np.abs(W2) @ np.abs(A1)).max(axis=1, keepdims=True) + 0.25
    b2[:2] = -(W2 @ A1)[:2, [2]]  # example 2 on the kink of units 0 and 1 of layer 2
    W3 = rng.integers(-4, 5, (2, 4)) / 4.0
    b3 = rng.integers(-4, 5, (2, 1)) / 4.0
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}
    Y = rng.standard_normal((2, m))
    config = Config(arch.layer_sizes, arch.activations, arch.loss)
    Z1 = W1 @ X + b1
    Z2 = W2 @ A1 + b2
    assert np.all(Z1[:2, 1] == 0.0) and np.all(Z2[:2, 2] == 0.0)
    return arch, params, X, Y, config


def course_problem(bugs: bool = True):
    """The course's 4-5-3-1 case as ``(backprop, arch, params, X, Y, config)``, with or without its planted bugs."""
    from fastgrad.naive import course_backward, course_backward_with_bugs, course_case

    X, y, params = course_case()
    Y = y.reshape(1, -1).astype(float)
    arch = Architecture("course 4-5-3-1", (4, 5, 3, 1), ("relu", "relu", "sigmoid"), "binary_cross_entropy", m=3)
    config = Config(arch.layer_sizes, arch.activations, arch.loss)
    chosen = course_backward_with_bugs if bugs else course_backward

    def backprop(p, X_, Y_, c):
        return chosen(X_, Y_, p)

    backprop.name = "course planted bugs (dW2 x2, db1 x4)" if bugs else "course back-prop, fixed"
    return backprop, arch, params, X, Y, config
