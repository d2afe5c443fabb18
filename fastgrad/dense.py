"""``DenseNet``: a fully connected network in the course's conventions, with a fast gradient check.

Conventions (the course's): ``X`` has shape ``(n0, m)``, examples as columns;
``Y`` has shape ``(nL, m)``, or ``(m,)`` for one output; parameters are a dict
``W1`` ``(n1, n0)``, ``b1`` ``(n1, 1)``, ..., ``WL``, ``bL``.

Everything here validates and converts in Python, then hands plain float64
arrays to the compiled kernels of ``fastgrad._dense_kernels`` (forward cost,
perturbed costs) and ``fastgrad._dense_engine`` (the structure-exploiting
perturbation kernel), or to ``fastgrad._dense_numpy`` (the back-prop, and
the whole check of a small network). The caller's arrays are never modified.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from fastgrad import _dense_numpy
from fastgrad._dense_spec import ACTIVATIONS, LOSSES
from fastgrad._layout import Layout, unpack
from fastgrad._memory import dense_check_bytes, require_memory
from fastgrad._threads import blas_on_one_thread
from fastgrad._differences import UNRESOLVED
from fastgrad._driver import run_check
from fastgrad._validation import check_seed
from fastgrad.check import prepare_check
from fastgrad.distributed import check_client, dense_recipe, on_cluster
from fastgrad.engines import DenseEngine, DenseForwardEngine, NumpyDenseEngine, compute_threads
from fastgrad.report import Report, TermResult, judge

__all__ = ["DenseNet", "TrainingCheck"]

#: The output activation each loss implies when ``activations`` is a single name.
DEFAULT_OUTPUT = {
    "binary_cross_entropy": "sigmoid",
    "softmax_cross_entropy": "linear",
    "mse": "linear",
}

ENGINES = ("auto", "dense", "generic")

# --------------------------------------------------------------------------- #
# "fastgrad: compiling kernels for ...", once
# --------------------------------------------------------------------------- #

#: Set (to anything but "" or "0") to silence the notice.
QUIET_VARIABLE = "FASTGRAD_QUIET"

#: Rough cold-compile time of a first run (a dense check; the back-prop is NumPy's;
#: seconds on the 2-core machine of docs/benchmarks.md), by whether a hidden layer
#: is tanh / sigmoid: 10-11 s and 13-15 s measured (a 6-7-5-3 softmax network,
#: empty cache).
_COMPILE_ESTIMATE = {False: 10, True: 15}

_notice_lock = threading.Lock()
_notice_depth = 0
_notice = None


class _CompileNoticeBase:
    """Announces, on one line of stderr, the kernels Numba compiles while it is installed.

    Numba fires ``numba:compile`` only after a cache miss, just before it
    compiles, so loading kernels from the on-disk cache prints nothing. The
    first compiled fastgrad function prints the notice; each one after it a
    dot (the progress); :meth:`finish` ends the line with the time taken.
    """

    def __init__(self, what: str, estimate: int | None) -> None:
        self.what = what
        self.estimate = estimate
        self.started: float | None = None

    def on_start(self, event) -> None:
        dispatcher = (event.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith("fastgrad"):
            return
        if self.started is None:
            self.started = time.perf_counter()
            about = f", ~{self.estimate} s" if self.estimate else ""
            self._write(f"fastgrad: compiling kernels for {self.what} (first run only{about}; "
                        "cached for later runs) ")
        else:
            self._write(".")

    def on_end(self, event) -> None:
        pass

    def finish(self) -> None:
        if self.started is not None:
            self._write(f" done in {time.perf_counter() - self.started:.0f} s\n")
            self.started = None

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):  # a closed or missing stderr: say nothing
            pass


@functools.cache
def _notice_class() -> type:
    """The notice as a Numba event listener (Numba is imported here, when compiled code is about to run)."""
    from numba.core import event as numba_event

    return type("_CompileNotice", (_CompileNoticeBase, numba_event.Listener), {})


def _quiet() -> bool:
    return os.environ.get(QUIET_VARIABLE, "") not in ("", "0")


@contextmanager
def _announce_compilation(net: "DenseNet | None" = None):
    """Run compiled kernels: BLAS on one thread, and a notice when kernels are compiled.

    The notice (one line on stderr, with a dot per compiled function, and
    nothing when every kernel comes from the cache) names the network's
    activations and loss; ``FASTGRAD_QUIET=1`` silences it. Nested uses
    (a check calls the back-prop) share the outermost one's line.

    The kernels parallelise with Numba's threads. Matrix products inside them
    (SciPy's OpenBLAS) would otherwise start threads of their own that keep
    spinning after each call and, on a small machine, take the cores the
    ``prange`` workers need: a full check of the M network ran 2-3x slower.
    """
    global _notice_depth, _notice
    with blas_on_one_thread():
        if _quiet():
            yield
            return
        with _notice_lock:
            outermost = _notice_depth == 0
            _notice_depth += 1
            if outermost:
                if net is None:
                    what, estimate = "dense networks", None
                else:
                    what = "/".join(dict.fromkeys(net.activations)) + "/" + net.loss
                    estimate = _COMPILE_ESTIMATE[any(a in ("tanh", "sigmoid") for a in net.activations[:-1])]
                _notice = _notice_class()(what, estimate)
            notice = _notice
        try:
            if outermost:
                from numba.core import event as numba_event

                with numba_event.install_listener("numba:compile", notice):
                    yield
            else:
                yield
        finally:
            with _notice_lock:
                _notice_depth -= 1
                if outermost:
                    notice.finish()
                    _notice = None


# --------------------------------------------------------------------------- #
# Input checks (all in Python, before any compiled code)
# --------------------------------------------------------------------------- #


def _real_array(value: object, what: str) -> np.ndarray:
    """A float64 C-contiguous copy of numeric real data (ints, bools and float32 promoted)."""
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{what} could not be read as a NumPy array: {exc}") from None
    if np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(
            f"{what} is complex ({array.dtype}); pass real values (the complex step is method='complex')."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{what} has dtype {array.dtype}; pass numbers (convert with .astype(np.float64)).")
    result = np.array(array, dtype=np.float64, order="C", copy=True)
    bad = np.flatnonzero(~np.isfinite(result))
    if bad.size:
        position = _position(int(bad[0]), result.shape)
        raise ValueError(
            f"{what} contains {result.flat[bad[0]]} at index {position}: "
            "fastgrad needs finite values; fix the NaN or infinity at its source."
        )
    return result


def _position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...] | int:
    """A flat index as the plain-int index a person would type."""
    if len(shape) <= 1:
        return flat_index
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def _names_list(names: Sequence[str]) -> str:
    return ", ".join(names)


def _check_layer_sizes(layer_sizes: object) -> tuple[int, ...]:
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, (Sequence, np.ndarray)):
        raise TypeError(
            f"layer_sizes must be a sequence of integers such as [4, 5, 3, 1] (inputs, hidden..., outputs), "
            f"got {type(layer_sizes).__name__}."
        )
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes must list at least two sizes (inputs and outputs), got {sizes}."
        )
    for position, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"layer_sizes[{position}] = {n!r} is not an integer; give whole numbers of units.")
        if n < 1:
            raise ValueError(f"layer_sizes[{position}] = {n}; every layer needs at least one unit.")
    return tuple(int(n) for n in sizes)


def _check_activation_name(name: object, where: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r} {where}; valid activations: {_names_list(ACTIVATIONS)}."
        )
    return str(name)


def _check_activations(activations: object, output: object, loss: str, n_layers: int) -> tuple[str, ...]:
    if isinstance(activations, str):
        hidden = _check_activation_name(activations, "for the hidden layers")
        out = DEFAULT_OUTPUT[loss] if output is None else _check_activation_name(output, "for output=")
        return (hidden,) * (n_layers - 1) + (out,)
    if output is not None:
        raise ValueError(
            "output= goes with a single hidden activation name (activations='relu', output='sigmoid'); "
            "with a list of activations, the last name is the output activation."
        )
    if not isinstance(activations, Sequence):
        raise TypeError(
            "activations must be one name for every hidden layer (e.g. 'relu') or a list with one name "
            f"per layer, got {type(activations).__name__}."
        )
    names = list(activations)
    if len(names) != n_layers:
        raise ValueError(
            f"activations lists {len(names)} name(s) but the network has {n_layers} layer(s): give one "
            "name per layer (the last is the output), or a single hidden activation such as 'relu'."
        )
    return tuple(_check_activation_name(name, f"for layer {l}") for l, name in enumerate(names, start=1))


def _check_dropout(dropout: object, n_hidden: int) -> tuple[float, ...] | None:
    if dropout is None:
        return None
    if isinstance(dropout, (int, float, np.integer, np.floating)) and not isinstance(dropout, bool):
        rates = [float(dropout)] * n_hidden
    elif isinstance(dropout, Sequence) and not isinstance(dropout, str):
        rates = [float(r) for r in dropout]
        if len(rates) != n_hidden:
            raise ValueError(
                f"dropout lists {len(rates)} rate(s) but the network has {n_hidden} hidden layer(s): "
                "give one rate per hidden layer, or a single rate for all."
            )
    else:
        raise TypeError(f"dropout must be a rate in [0, 1) or a list of them, got {type(dropout).__name__}.")
    for rate in rates:
        if not (0.0 <= rate < 1.0):
            raise ValueError(
                f"dropout rate {rate} is outside [0, 1): it is the probability of dropping a hidden unit."
            )
    if n_hidden == 0 or all(rate == 0.0 for rate in rates):
        return None
    return tuple(rates)


# --------------------------------------------------------------------------- #
# The network
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TrainingCheck:
    """Gradient checks at the given parameters and after some gradient descent.

    Attributes
    ----------
    before, after : Report
        The check at the starting parameters and after training.
    params_after : dict
        The trained parameters.
    costs : numpy.ndarray
        The cost before each step of gradient descent and after the last one.
    """

    before: Report
    after: Report
    params_after: dict
    costs: np.ndarray

    @property
    def passed(self) -> bool:
        """Both checks passed."""
        return self.before.passed and self.after.passed

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return (
            f"at the given parameters (cost {self.costs[0]:.6g}):\n{self.before}\n\n"
            f"after {self.costs.size - 1} steps of gradient descent (cost {self.costs[-1]:.6g}):\n{self.after}"
        )


class DenseNet:
    """A fully connected network with a compiled forward cost, back-prop and gradient check.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n0, n1, ..., nL]``: inputs, hidden layers, outputs.
    activations : str or sequence of str
        One name per layer (``len(layer_sizes) - 1`` names, the last being the
        output activation), or a single name used by every hidden layer, in
        which case the output activation is ``output`` or, by default, the one
        the loss implies (``sigmoid`` for binary cross-entropy, ``linear`` for
        softmax cross-entropy and MSE). Names: ``linear``, ``relu``,
        ``leaky_relu`` (slope 0.01), ``tanh``, ``sigmoid``.
    loss : str
        ``binary_cross_entropy`` (on a ``sigmoid`` output; the course's
        ``(1/m) sum(-y log a - (1-y) log(1-a))``, computed from the logits),
        ``softmax_cross_entropy`` (on a ``linear`` output: the loss applies the
        softmax itself, stably), or ``mse`` (``(1/(2m)) sum (a - y)^2``).
    l2 : float
        L2 strength: the penalty ``l2/(2m) * sum ||W_l||^2`` (the course's).
    dropout : float or sequence of float, optional
        Probability of dropping a hidden unit (one rate for all hidden layers,
        or one per hidden layer). Inverted dropout: kept activations are
        divided by the keep probability. The mask is drawn once per
        (layer, unit, example) from ``dropout_seed`` and held fixed, so the
        cost, back-prop and every perturbed evaluation use the same mask and a
        gradient check is exact (see :meth:`dropout_masks`).
    dropout_seed : int
        Seed of the dropout masks.
    output : str, optional
        Output activation when ``activations`` is a single name.

    Examples
    --------
    >>> import fastgrad
    >>> net = fastgrad.DenseNet([4, 5, 3, 1], "relu", "binary_cross_entropy")
    >>> net.activations
    ('relu', 'relu', 'sigmoid')
    >>> params = net.init(seed=0)
    >>> sorted(params) == sorted(["W1", "b1", "W2", "b2", "W3", "b3"])
    True
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activations: str | Sequence[str],
        loss: str,
        l2: float = 0.0,
        dropout: float | Sequence[float] | None = None,
        dropout_seed: int = 0,
        *,
        output: str | None = None,
    ) -> None:
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        n_layers = len(self.layer_sizes) - 1
        if not isinstance(loss, str):
            raise TypeError(
                f"loss must be the name of one loss ({_names_list(LOSSES)}), got {type(loss).__name__} {loss!r}."
            )
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; valid losses: {_names_list(LOSSES)}.")
        self.loss = str(loss)
        self.activations = _check_activations(activations, output, self.loss, n_layers)
        last = self.activations[-1]
        if self.loss == "softmax_cross_entropy":
            if last != "linear":
                raise ValueError(
                    f"softmax_cross_entropy applies the softmax to the logits itself, so the output "
                    f"activation must be 'linear', not {last!r}."
                )
            if self.layer_sizes[-1] < 2:
                raise ValueError(
                    "softmax_cross_entropy needs at least 2 outputs (one per class); for one output use "
                    "binary_cross_entropy with a sigmoid output."
                )
        if self.loss == "binary_cross_entropy" and last != "sigmoid":
            raise ValueError(
                f"binary_cross_entropy needs a 'sigmoid' output activation (its outputs are probabilities), "
                f"not {last!r}."
            )
        if isinstance(l2, bool) or not isinstance(l2, (int, float, np.integer, np.floating)):
            raise TypeError(f"l2 must be a number (the L2 strength), got {type(l2).__name__}.")
        if not (math.isfinite(float(l2)) and float(l2) >= 0.0):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2}.")
        self.l2 = float(l2)
        self.dropout = _check_dropout(dropout, n_layers - 1)
        self.dropout_seed = check_seed(dropout_seed, "dropout_seed")
        self._dropout_cache: dict[int, np.ndarray] = {}

        names, shapes = [], []
        for l in range(1, n_layers + 1):
            names += [f"W{l}", f"b{l}"]
            shapes += [(self.layer_sizes[l], self.layer_sizes[l - 1]), (self.layer_sizes[l], 1)]
        self._layout = Layout(tuple(names), tuple(shapes))
        self._layer_sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        self._activation_codes = np.asarray([ACTIVATIONS[a] for a in self.activations], dtype=np.int64)
        self._loss_code = LOSSES[self.loss]

    # ------------------------------------------------------------------ #
    # Description
    # ------------------------------------------------------------------ #
    @property
    def layout(self) -> Layout:
        """The layout of theta: ``W1, b1, W2, b2, ...`` with their shapes (the course's order)."""
        return self._layout

    @property
    def n_params(self) -> int:
        """Number of parameters (components of theta)."""
        return self._layout.size

    def __repr__(self) -> str:
        extras = ""
        if self.l2:
            extras += f", l2={self.l2:g}"
        if self.dropout is not None:
            extras += f", dropout={list(self.dropout)}, dropout_seed={self.dropout_seed}"
        return (
            f"DenseNet({list(self.layer_sizes)}, {list(self.activations)}, {self.loss!r}{extras})"
        )

    # ------------------------------------------------------------------ #
    # Parameters and data
    # ------------------------------------------------------------------ #
    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random parameters: He scaling for (leaky) ReLU layers, Xavier otherwise; biases zero.

        ``W_l`` is drawn from a normal distribution with standard deviation
        ``sqrt(2 / n_{l-1})`` when layer l's activation is ``relu`` or
        ``leaky_relu`` (He), ``sqrt(2 / (n_{l-1} + n_l))`` otherwise (Xavier).

        Parameters
        ----------
        seed : int
            Seed of ``numpy.random.default_rng``.

        Returns
        -------
        dict
            ``W1, b1, ..., WL, bL`` (new float64 arrays).
        """
        rng = np.random.default_rng(check_seed(seed))
        params = {}
        for l in range(1, len(self.layer_sizes)):
            n_in, n_out = self.layer_sizes[l - 1], self.layer_sizes[l]
            if self.activations[l - 1] in ("relu", "leaky_relu"):
                scale = math.sqrt(2.0 / n_in)
            else:
                scale = math.sqrt(2.0 / (n_in + n_out))
            params[f"W{l}"] = rng.standard_normal((n_out, n_in)) * scale
            params[f"b{l}"] = np.zeros((n_out, 1))
        return params

    def pack(self, params: Mapping[str, object]) -> np.ndarray:
        """Validate ``params`` against the layer sizes and pack them into theta (a new vector).

        Raises
        ------
        TypeError
            ``params`` is not a mapping, or a block is not real numeric data.
        ValueError
            A block is missing, unexpected, of the wrong shape (the message names
            the block and both shapes) or holds NaN or infinity.
        """
        if not isinstance(params, Mapping):
            raise TypeError(
                f"params must be a dict of W1, b1, ... arrays (as returned by net.init), got {type(params).__name__}."
            )
        expected = self._layout.names
        missing = [name for name in expected if name not in params]
        if missing:
            raise ValueError(
                f"params is missing block {missing[0]!r}: layer_sizes {list(self.layer_sizes)} need "
                f"{_names_list(expected)}."
            )
        extra = [name for name in params if name not in expected]
        if extra:
            raise ValueError(
                f"params has an unexpected block {extra[0]!r}: layer_sizes {list(self.layer_sizes)} need "
                f"exactly {_names_list(expected)}."
            )
        theta = np.empty(self._layout.size, dtype=np.float64)
        for name, shape, start in zip(expected, self._layout.shapes, self._layout.offsets):
            block = _real_array(params[name], f"params[{name!r}]")
            if block.shape != shape:
                hint = ""
                if name.startswith("b") and block.size == shape[0]:
                    hint = " (reshape the bias into a column: b.reshape(-1, 1))"
                raise ValueError(
                    f"{name} has shape {block.shape} but layer_sizes {list(self.layer_sizes)} need {shape}{hint}."
                )
            theta[start : start + block.size] = block.ravel()
        return theta

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The parameter dict of a theta vector laid out as :attr:`layout`."""
        return unpack(theta, self._layout)

    def _data(self, X: object, Y: object) -> tuple[np.ndarray, np.ndarray]:
        """Validated float64 copies of X (n0, m) and Y (nL, m)."""
        n0, n_out = self.layer_sizes[0], self.layer_sizes[-1]
        X = _real_array(X, "X")
        if X.ndim != 2 or X.shape[0] != n0 or X.shape[1] < 1:
            hint = ""
            if X.ndim == 2 and X.shape[1] == n0:
                hint = " It looks transposed: examples are columns in the course's layout, pass X.T."
            raise ValueError(
                f"X has shape {X.shape} but layer_sizes[0] = {n0} needs ({n0}, m): one column per example.{hint}"
            )
        m = X.shape[1]
        Y = _real_array(Y, "Y")
        if Y.ndim == 1 and n_out == 1 and Y.shape[0] == m:
            Y = Y.reshape(1, m)
        if Y.shape != (n_out, m):
            hint = " Pass the labels as a (1, m) row or an (m,) vector." if n_out == 1 else ""
            if Y.ndim == 2 and Y.shape == (m, n_out):
                hint = " It looks transposed: pass Y.T."
            raise ValueError(
                f"Y has shape {Y.shape} but {n_out} output(s) and X's {m} example(s) need ({n_out}, {m}).{hint}"
            )
        if self.loss == "binary_cross_entropy":
            outside = np.flatnonzero((Y < 0.0) | (Y > 1.0))
            if outside.size:
                position = _position(int(outside[0]), Y.shape)
                raise ValueError(
                    f"Y must lie in [0, 1] for binary_cross_entropy, but Y{position} = {float(Y.flat[outside[0]])!r}."
                )
        elif self.loss == "softmax_cross_entropy":
            valid = np.all((Y == 0.0) | (Y == 1.0), axis=0) & (Y.sum(axis=0) == 1.0)
            if not valid.all():
                j = int(np.flatnonzero(~valid)[0])
                raise ValueError(
                    f"Y must be one-hot for softmax_cross_entropy (each column a single 1, zeros elsewhere), "
                    f"but column {j} is {Y[:, j].tolist()}. Convert class labels with "
                    f"np.eye({n_out})[labels].T."
                )
        return X, Y

    # ------------------------------------------------------------------ #
    # Dropout
    # ------------------------------------------------------------------ #
    def dropout_masks(self, m: int) -> list[np.ndarray] | None:
        """The fixed dropout masks for a batch of ``m`` examples (None without dropout).

        One boolean array ``(n_l, m)`` per hidden layer, True where the unit is
        kept; drawn from ``numpy.random.default_rng(dropout_seed)`` layer after
        layer, so they are the same at every call. A hand-written back-prop must
        use these masks (multiplied by ``1 / keep_prob``) to be checked exactly.
        """
        if self.dropout is None:
            return None
        rng = np.random.default_rng(self.dropout_seed)
        return [rng.random((n, m)) < 1.0 - rate for n, rate in zip(self.layer_sizes[1:-1], self.dropout)]

    def dropout_scales(self, m: int) -> list[np.ndarray] | None:
        """``mask / keep_prob`` for each hidden layer (inverted dropout), or None."""
        masks = self.dropout_masks(m)
        if masks is None:
            return None
        return [mask / (1.0 - rate) for mask, rate in zip(masks, self.dropout)]

    def _dropout_array(self, m: int) -> np.ndarray:
        # Drawn once per batch size: training and checks call the kernels many
        # times with the same masks. (Kept writeable: a read-only array is
        # another type to Numba, and would compile every kernel again.)
        cached = self._dropout_cache.get(m)
        if cached is None:
            scales = self.dropout_scales(m)
            cached = np.zeros((0, m)) if scales is None else np.ascontiguousarray(np.vstack(scales))
            self._dropout_cache[m] = cached
        return cached

    # ------------------------------------------------------------------ #
    # Cost and back-prop
    # ------------------------------------------------------------------ #
    def _kernel_args(self, X: np.ndarray, Y: np.ndarray, l2: float | None = None) -> tuple:
        return (
            self._layer_sizes, self._activation_codes, self._loss_code,
            self.l2 if l2 is None else l2, X, Y, self._dropout_array(X.shape[1]),
        )

    def cost(self, params: Mapping[str, object], X: object, Y: object) -> float:
        """The cost ``J`` at ``params`` on ``(X, Y)`` (with the L2 penalty and dropout masks).

        Raises
        ------
        ValueError, TypeError
            For parameters or data that do not fit the network (see :meth:`pack`).
        """
        theta = self.pack(params)
        X, Y = self._data(X, Y)
        from fastgrad import _dense_kernels

        with _announce_compilation(self):
            return float(_dense_kernels.forward_cost(theta, *self._kernel_args(X, Y)))

    def gradients(self, params: Mapping[str, object], X: object, Y: object) -> dict[str, np.ndarray]:
        """The gradient by back-prop (NumPy's matrix products): ``dW1, db1, ..., dWL, dbL``."""
        theta = self.pack(params)
        X, Y = self._data(X, Y)
        _, grad = self._cost_and_gradient(theta, X, Y)
        return {"d" + name: block for name, block in unpack(grad, self._layout).items()}

    def _cost_and_gradient(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
        # Back-prop is a few matrix products per layer: NumPy's (BLAS) are as
        # fast as compiled loops, and a first run compiles nothing for it.
        return _dense_numpy.cost_and_gradient(self._kernel_args(X, Y), theta)

    # ------------------------------------------------------------------ #
    # Training
    # ------------------------------------------------------------------ #
    def train(
        self,
        params: Mapping[str, object],
        X: object,
        Y: object,
        *,
        steps: int = 100,
        learning_rate: float = 0.1,
    ) -> dict[str, np.ndarray]:
        """Plain gradient descent with fastgrad's own back-prop.

        Parameters
        ----------
        params : dict
            Starting parameters (left unchanged).
        X, Y : array_like
            Training data.
        steps : int
            Number of steps ``theta <- theta - learning_rate * grad``.
        learning_rate : float

        Returns
        -------
        dict
            The trained parameters (new arrays).
        """
        theta = self.pack(params)
        X, Y = self._data(X, Y)
        theta, _ = self._descend(theta, X, Y, steps, learning_rate)
        return unpack(theta, self._layout)

    def _descend(self, theta, X, Y, steps, learning_rate) -> tuple[np.ndarray, np.ndarray]:
        _check_training(steps, learning_rate)
        costs = np.empty(int(steps) + 1)
        theta = theta.copy()
        for step in range(int(steps)):
            costs[step], grad = self._cost_and_gradient(theta, X, Y)
            theta -= learning_rate * grad
        costs[-1], _ = self._cost_and_gradient(theta, X, Y)
        if not np.all(np.isfinite(costs)) or not np.all(np.isfinite(theta)):
            raise FloatingPointError(
                f"gradient descent diverged (cost {costs[-1]}): use a smaller learning_rate than {learning_rate}."
            )
        return theta, costs

    # ------------------------------------------------------------------ #
    # Gradient check
    # ------------------------------------------------------------------ #
    def gradcheck(
        self,
        params: Mapping[str, object],
        X: object,
        Y: object,
        grads: Mapping[str, object] | np.ndarray | None = None,
        *,
        eps: float | None = None, threshold: float | None = None, indices: object = None, method: str = "central",
        sample: int | None = None, mode: str = "full", seed: int = 0, directions: int = 8,
        progress: bool | None = None, engine: str = "auto", client: object = None,
    ) -> Report:
        """Check a gradient of this network's cost by finite differences.

        Parameters
        ----------
        params : dict
            ``W1, b1, ...`` where the gradient is checked.
        X, Y : array_like
            Data, course layout (``Y`` may be ``(m,)`` for one output).
        grads : dict, vector or None
            The gradient to check: a dict with ``dW1, db1, ...`` (or ``W1, b1,
            ...``) names, or a vector laid out like :attr:`layout`. float32 is
            accepted and compared with the float64 numerical gradient at a
            tolerance stated in the report. None checks fastgrad's own back-prop.
        eps : float, optional
            Explicit step (the course's formula, ``theta_k +- eps``). Default: a
            step per component from the cost's measured noise (``fastgrad._differences``).
        threshold : float, optional
            Pass threshold on the relative difference (default from the method
            and the gradient's dtype).
        indices : array_like of int, optional
            Components of theta to check (default: all).
        method : {"central", "forward", "richardson", "complex"}
            Difference formula; ``"complex"`` is the complex step, exact to
            rounding on smooth networks.
        sample : int, optional
            Check only ``sample`` random components per block (seeded by
            ``seed``); the report's mode is then ``"sampled"``.
        mode : {"full", "directional"}
            ``"directional"`` compares directional derivatives along a few
            random directions instead of components (see ``fastgrad.check``).
        seed : int
            Seed of the sampled components or random directions.
        directions : int
            Number of random directions of a directional check.
        progress : bool, optional
            Progress bar (default: on a terminal, for checks longer than ~1 s).
        engine : {"auto", "dense", "generic"}
            ``"dense"``: the structure-exploiting kernel of
            ``fastgrad._dense_engine``; ``"generic"``: a full forward pass per
            perturbed point; ``"auto"``: the dense engine where it applies, run
            in NumPy (``fastgrad._dense_numpy``, no Numba to load) for a small
            network (``n_params * m * sum(layer_sizes[1:]) <= 20,000``) with a
            real method. All give the same numbers within rounding; the choice
            depends on these arguments alone.
        client : distributed.Client, optional
            Evaluate on this Dask cluster (needs ``fastgrad[distributed]``);
            the report is bit-identical to the in-process one.

        Returns
        -------
        Report
            With the layout, so failing blocks and components are named. With
            ``l2 > 0`` its ``terms`` hold the check of the data term and of the
            L2 penalty on their own.

        Raises
        ------
        CheckInterrupted
            On Ctrl-C; its ``partial`` holds the report of the components done.
        """
        theta = self.pack(params)
        X, Y = self._data(X, Y)
        # A small check runs in NumPy, whatever ran before in the process: loading
        # Numba would take far longer than the check (issue 13). The choice depends
        # on the call alone (network, data size, engine, method), so the same call
        # gives the same numbers in any process, and on a cluster's workers too.
        in_numpy = (engine == "auto" and method != "complex"
                    and _dense_numpy.is_small(self.layer_sizes, theta.size, X.shape[1]))
        require_memory(dense_check_bytes(self.layer_sizes, X.shape[1], 1 if in_numpy else compute_threads()),
                       f"a gradient check of {self!r} on {X.shape[1]} examples")
        grad, _, opts = prepare_check(
            theta, grads, self._layout, grad_optional=True, method=method, mode=mode, eps=eps,
            threshold=threshold, indices=indices, sample=sample, seed=seed, directions=directions,
            progress=progress,
        )
        use_dense = _choose_engine(engine, opts.method)
        in_numpy = in_numpy and use_dense
        if client is not None:
            check_client(client)
        with contextlib.nullcontext() if in_numpy else _announce_compilation(self):  # one notice for every kernel compiled
            args = self._kernel_args(X, Y)
            # One pass gives the cost and fastgrad's own back-prop (the cost alone
            # when the caller brought a gradient).
            grad_owned = grad is None or isinstance(grads, Mapping)  # an array only the check holds
            if grad is None:
                cost_value, grad = _dense_numpy.cost_and_gradient(args, theta)
            else:
                cost_value = _dense_numpy.forward_cost(args, theta)
            if not math.isfinite(cost_value):
                raise ValueError(
                    f"The cost is {cost_value} at these parameters; it must be finite to be differentiated."
                )
            if in_numpy:
                check_engine = NumpyDenseEngine(args, theta, cost_value, self._layout)
            elif use_dense:
                check_engine = DenseEngine(args, theta, cost_value, self._layout)
            else:
                check_engine = DenseForwardEngine(args, theta, cost_value, self._layout,
                                                  complex_step=opts.method == "complex")
            terms = None if self.l2 == 0.0 else (lambda est, g: self._l2_terms(theta, X.shape[1], g, est, opts))
            recipe = functools.partial(dense_recipe, args, theta, cost_value, self._layout, forward=not use_dense,
                                       complex_step=opts.method == "complex", numpy=in_numpy)
            with on_cluster(client, check_engine, recipe, opts.progress) as check_engine:
                real = (lambda: DenseForwardEngine(args, theta, cost_value, self._layout)) if opts.method == "complex" \
                    else None
                return run_check(check_engine, grad, opts, self._layout, terms=terms, real_engine=real,
                                 description="gradcheck " + "-".join(map(str, self.layer_sizes)),
                                 grad_owned=grad_owned)

    def _l2_terms(self, theta, m, grad, estimate, opts) -> tuple[TermResult, ...]:
        """The data term and the L2 penalty checked on their own.

        The penalty's gradient is known exactly, ``P = (l2/m) W`` (zero on
        biases), so the numerical gradient of the data term is the total's
        minus P. The residual ``R = G - N`` of the gradient G under check is
        then attributed block by block: where a weight block fails and its
        residual is (nearly) a multiple c of P there, that block's penalty
        gradient is wrong (it is ``(1 + c) P``); the data term is checked
        against ``G`` minus the penalty gradient so implied, and the penalty
        against ``P``.
        """
        smooth = ~estimate.kinks & (estimate.state != UNRESOLVED)
        idx = estimate.indices[smooth]
        if idx.size == 0:
            return ()
        G = grad[smooth]
        N = estimate.approx[smooth]
        error = estimate.error[smooth]
        block_ids = self._layout.block_of(idx)
        is_weight = np.array([name.startswith("W") for name in self._layout.names])[block_ids]
        P = np.where(is_weight, (self.l2 / m) * theta[idx], 0.0)
        R = G - N

        def rule(g, a, e):
            # Per-component states were judged in the main report; here only the norms count.
            verdict = judge(g, a, e, np.zeros(g.size, np.int8), opts.threshold)
            return verdict.difference, verdict.tolerance, verdict.verdict != "fail"

        # The penalty gradient implied by G: (1 + c_b) P on every weight block b
        # whose failure a multiple of P explains, P elsewhere; and c_b (l2/m) b on
        # a bias block whose failure is explained by penalising the biases too.
        implied = P.copy()
        wrong = []
        for b, name in enumerate(self._layout.names):
            members = block_ids == b
            if not members.any() or rule(G[members], N[members], error[members])[2]:
                continue
            R_b = R[members]
            pattern = P[members] if name.startswith("W") else (self.l2 / m) * theta[idx][members]
            p_norm2 = float(pattern @ pattern)
            if p_norm2 == 0.0:
                continue
            c = float(R_b @ pattern) / p_norm2
            if float(np.linalg.norm(R_b - c * pattern)) > 0.1 * float(np.linalg.norm(R_b)):
                continue
            if name.startswith("W"):
                implied[members] = (1.0 + c) * pattern
                factor = 1.0 + c
                how = "missing" if abs(factor) < 1e-3 else f"{factor:.3g} x l2/m * {name} (expected 1 x)"
            else:
                implied[members] = c * pattern
                how = f"{c:.3g} x l2/m * {name} (biases are not regularised)"
            wrong.append(f"{name}: {how}")
        d_data, t_data, ok_data = rule(G - implied, N - P, error)
        d_pen, t_pen, ok_pen = rule(implied, P, np.zeros(idx.size))
        if wrong:
            note = "penalty gradient wrong in " + "; ".join(wrong)
        elif ok_data:
            note = "l2/m * W"
        else:
            note = "no failure is explained by the penalty: the data term is wrong"
        data = TermResult("data term", d_data, t_data, bool(ok_data), "")
        penalty = TermResult("L2 penalty", d_pen, t_pen, bool(ok_pen and not wrong), note)
        return (data, penalty)

    def check_before_and_after_training(
        self,
        params: Mapping[str, object],
        X: object,
        Y: object,
        backward: Callable[[dict, np.ndarray, np.ndarray], Mapping[str, object]] | None = None,
        *,
        steps: int = 50,
        learning_rate: float = 0.1,
        **gradcheck_options,
    ) -> TrainingCheck:
        """Check the gradient at ``params`` and again after some gradient descent.

        The course's advice in one call: a back-prop may be right at random
        initialisation (where many terms are small) and wrong after training.

        Parameters
        ----------
        params : dict
            Starting parameters (left unchanged).
        X, Y : array_like
            Data, used for training and for both checks.
        backward : callable, optional
            ``backward(params, X, Y) -> dict`` of gradients (``dW1, db1, ...``):
            the back-prop to check at both points. None checks fastgrad's own.
        steps, learning_rate
            Gradient descent with fastgrad's back-prop between the checks.
        **gradcheck_options
            Passed to :meth:`gradcheck` (``eps``, ``threshold``, ``method``, ...).

        Returns
        -------
        TrainingCheck
        """
        _check_training(steps, learning_rate)
        theta = self.pack(params)
        X_checked, Y_checked = self._data(X, Y)
        start = unpack(theta, self._layout)
        grads = None if backward is None else backward(unpack(theta, self._layout), X_checked.copy(), Y_checked.copy())
        before = self.gradcheck(start, X_checked, Y_checked, grads, **gradcheck_options)
        trained_theta, costs = self._descend(theta, X_checked, Y_checked, steps, learning_rate)
        trained = unpack(trained_theta, self._layout)
        grads = None if backward is None else backward(unpack(trained_theta, self._layout), X_checked.copy(), Y_checked.copy())
        after = self.gradcheck(trained, X_checked, Y_checked, grads, **gradcheck_options)
        return TrainingCheck(before=before, after=after, params_after=trained, costs=costs)


def _check_training(steps: object, learning_rate: object) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}.")
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float, np.integer, np.floating))
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}.")


def _choose_engine(engine: str, method: str) -> bool:
    """True for the dense engine, False for the full-forward one; raises for a bad choice."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; choose one of {_names_list(ENGINES)}.")
    if engine == "generic":
        return False
    if method == "complex":
        if engine == "dense":
            raise ValueError(
                "engine='dense' evaluates real perturbations only; method='complex' runs on engine='generic' "
                "(or engine='auto')."
            )
        return False
    return True
