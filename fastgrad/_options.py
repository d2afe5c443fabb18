"""The options of a gradient check, validated and resolved once.

Every public entry point (``fastgrad.gradcheck``, ``DenseNet.gradcheck``,
``fastgrad.numerical_gradient``) turns its keyword arguments into one frozen
:class:`CheckOptions` here; no other module resolves a default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastgrad import _differences
from fastgrad._layout import Layout
from fastgrad._validation import as_indices, check_eps, check_seed, check_threshold

__all__ = ["CheckOptions", "resolve_options", "MODES"]

MODES = ("full", "directional")

#: Random directions drawn in place of one that crosses a kink.
DIRECTION_REDRAWS = 4


@dataclass(frozen=True)
class CheckOptions:
    """Everything that decides how a check runs.

    Attributes
    ----------
    method : str
        ``"central"``, ``"forward"``, ``"richardson"`` or ``"complex"``.
    mode : str
        ``"full"``, ``"sampled"`` or ``"directional"``.
    eps : float or None
        Explicit step (the course's formula), or None for measured steps.
    threshold : float
        Pass threshold on each block's relative difference.
    indices : numpy.ndarray or None
        int64 components to check; None checks every component in order (a
        full check: no array of them is made) and in directional mode.
    seed : int
        Seed of sampled components and random directions.
    directions : int
        Random directions of a directional check.
    progress : bool or None
        Progress bar (None: on a terminal, for checks longer than a second).
    grad_dtype : str
        ``"float64"``, ``"float32"`` or ``"float16"``: the user's gradient
        dtype (the least precise of its blocks').
    block_dtypes : tuple of str
        Each block's gradient dtype, where the blocks came in different dtypes
        (a dict with one float32 block); empty when they share ``grad_dtype``.
    """

    method: str
    mode: str
    eps: float | None
    threshold: float
    indices: np.ndarray | None
    seed: int
    directions: int
    progress: bool | None
    grad_dtype: str = "float64"
    block_dtypes: tuple[str, ...] = ()


def _positive_int(value: object, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive number of {what}, got {value!r}.")
    return int(value)


def sample_indices(size: int, layout: Layout | None, sample: int, seed: int) -> np.ndarray:
    """``sample`` random components from each block (all of a smaller block), seeded."""
    rng = np.random.default_rng(seed)
    if layout is None:
        starts, sizes = (0,), (size,)
    else:
        starts, sizes = layout.offsets, [layout.block_size(n) for n in layout.names]
    chosen = [
        start + np.sort(rng.choice(n, size=min(sample, n), replace=False))
        for start, n in zip(starts, sizes)
        if n > 0
    ]
    return np.concatenate(chosen).astype(np.int64)


def resolve_options(
    size: int,
    layout: Layout | None,
    *,
    method: object = "central",
    mode: object = "full",
    eps: object = None,
    threshold: object = None,
    indices: object = None,
    sample: object = None,
    seed: object = 0,
    directions: object = 8,
    progress: object = None,
    grad_dtype: str = "float64",
    block_dtypes: tuple[str, ...] = (),
) -> CheckOptions:
    """Validate every option of a check and fill in its defaults.

    Raises
    ------
    ValueError, TypeError
        Naming the option that is wrong and what to pass instead.
    """
    method = _differences.check_method(method)
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose 'full' (use sample=k for a sampled check) or 'directional'.")
    eps = None if eps is None else check_eps(eps)
    threshold = _differences.DEFAULT_THRESHOLD if threshold is None else check_threshold(threshold)
    seed = check_seed(seed)
    directions = _positive_int(directions, "directions", "random directions")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True, False or None, got {progress!r}.")
    if sample is not None and indices is not None:
        raise ValueError("Give either indices= or sample=, not both.")
    if mode == "directional":
        if sample is not None or indices is not None:
            raise ValueError("mode='directional' checks all of theta at once; drop indices= and sample=.")
        if method != "central":
            raise ValueError("mode='directional' uses central differences; drop method= or use mode='full'.")
        chosen, resolved_mode = None, "directional"
    elif sample is not None:
        sample = _positive_int(sample, "sample", "components per block")
        chosen, resolved_mode = sample_indices(size, layout, sample, seed), "sampled"
    elif indices is not None:
        chosen, resolved_mode = as_indices(indices, size), "full"
    else:
        chosen, resolved_mode = None, "full"  # every component, in order
    return CheckOptions(
        method=method, mode=resolved_mode, eps=eps, threshold=threshold, indices=chosen, seed=seed,
        directions=directions, progress=None if progress is None else bool(progress), grad_dtype=grad_dtype,
        block_dtypes=tuple(block_dtypes),
    )
