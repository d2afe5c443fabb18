"""Packing named parameter blocks into one vector theta, and back.

This is the course's ``dictionary_to_vector`` / ``vector_to_dictionary`` done
right: the order is the mapping's order, every block is raveled in C order, and
a :class:`Layout` remembers names and shapes so that any component of theta can
be traced back to its block and position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from fastgrad._validation import as_float_array, as_float_vector

__all__ = ["Layout", "pack", "unpack"]


@dataclass(frozen=True)
class Layout:
    """Where each named block lives inside the packed vector theta.

    Parameters
    ----------
    names : tuple of str
        Block names, in packing order (``("W1", "b1", "W2", ...)``).
    shapes : tuple of tuple of int
        Shape of each block.

    Attributes
    ----------
    offsets : tuple of int
        Index in theta of each block's first component.
    size : int
        Total number of components.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...] = field(init=False, compare=False)
    size: int = field(init=False, compare=False)
    _sizes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _ends: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        shapes = tuple(_shape(s, n) for s, n in zip(self.shapes, list(names) + [None] * len(self.shapes)))
        if len(names) != len(shapes):
            raise ValueError(
                f"Layout needs one shape per name: got {len(names)} names and {len(shapes)} shapes."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"Layout block names must be unique, got {names}.")
        if any(d < 0 for s in shapes for d in s):
            raise ValueError(f"Layout shapes must not have negative dimensions, got {shapes}.")
        sizes = tuple(int(np.prod(s, dtype=np.int64)) for s in shapes)
        ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
        ends.setflags(write=False)
        # A frozen dataclass computes its derived fields through object.__setattr__.
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "shapes", shapes)
        object.__setattr__(self, "_sizes", sizes)
        object.__setattr__(self, "_ends", ends)
        object.__setattr__(self, "offsets", tuple(int(e - s) for e, s in zip(ends, sizes)))
        object.__setattr__(self, "size", int(ends[-1]) if len(sizes) else 0)

    def __repr__(self) -> str:
        blocks = ", ".join(f"{n}{list(s)}" for n, s in zip(self.names, self.shapes))
        return f"Layout({blocks}; size={self.size})"

    def block_size(self, name: str) -> int:
        """Number of components in block ``name``."""
        return self._sizes[self._position(name)]

    def slice(self, name: str) -> slice:
        """The slice of theta holding block ``name``.

        Raises
        ------
        KeyError
            If ``name`` is not a block of this layout.
        """
        i = self._position(name)
        return slice(self.offsets[i], self.offsets[i] + self._sizes[i])

    def block_of(self, indices: np.ndarray) -> np.ndarray:
        """Block number (position in ``names``) of each component in ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        return np.searchsorted(self._ends, indices, side="right")

    def locate(self, k: int) -> tuple[str, tuple[int, ...]]:
        """Map component ``k`` of theta to ``(block name, index tuple in the block)``.

        Examples
        --------
        >>> layout = Layout(("W1", "b1"), ((2, 3), (2, 1)))
        >>> layout.locate(4)
        ('W1', (1, 1))
        >>> layout.locate(6)
        ('b1', (0, 0))
        """
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(
                f"Component must be a whole number (an index into theta), got {type(k).__name__} {k!r}."
            )
        k = int(k)
        if not 0 <= k < self.size:
            raise IndexError(f"Component {k} is outside theta, which has {self.size} components (0..{self.size - 1}).")
        i = int(np.searchsorted(self._ends, k, side="right"))
        local = k - self.offsets[i]
        shape = self.shapes[i]
        position = tuple(int(p) for p in np.unravel_index(local, shape)) if shape else ()
        return self.names[i], position

    def _position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"No block named {name!r}; the layout has {list(self.names)}.") from None


def _shape(shape: object, name: str | None) -> tuple[int, ...]:
    """A block shape as a tuple of Python ints, refusing what would be silently truncated."""
    what = f"The shape of block {name!r}" if name is not None else "A shape"
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        raise TypeError(f"{what} must be a tuple of sizes, e.g. ({int(shape)},), got the number {shape!r}.")
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be a tuple of whole numbers, got {type(shape).__name__} {shape!r}.") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{what} must hold whole numbers, got {dims!r} ({type(d).__name__} {d!r}).")
    return tuple(int(d) for d in dims)


def _lookup(params: Mapping[str, object], name: str) -> object | None:
    """Find block ``name`` under its own name or the course's ``d``-prefixed one."""
    if name in params:
        return params[name]
    if "d" + name in params:
        return params["d" + name]
    return None


@overload
def pack(params: Mapping[str, object]) -> tuple[np.ndarray, Layout]: ...
@overload
def pack(params: Mapping[str, object], layout: Layout) -> np.ndarray: ...


def pack(params, layout=None):
    """Pack named arrays into one float64 vector.

    Parameters
    ----------
    params : mapping of str to array_like
        ``{"W1": ..., "b1": ..., ...}``. Blocks are laid out in the mapping's
        order, each raveled in C order.
    layout : Layout, optional
        When given, pack ``params`` in this layout's order and check every
        block's shape against it. Gradient dicts may use the same names or the
        course's ``d``-prefixed names (``dW1`` for ``W1``).

    Returns
    -------
    theta : numpy.ndarray
        A new float64 vector (never a view of the caller's arrays).
    layout : Layout
        Only when ``layout`` was not given.

    Raises
    ------
    ValueError
        A missing, extra or wrongly shaped block (the message names it and both
        shapes), or an empty mapping.
    TypeError
        A block that is not real floating point (or integer) data.

    Examples
    --------
    >>> import numpy as np, fastgrad
    >>> theta, layout = fastgrad.pack({"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))})
    >>> theta.shape, layout.names
    ((6,), ('W1', 'b1'))
    """
    if not isinstance(params, Mapping):
        raise TypeError(
            f"pack expects a mapping of block name to array (like {{'W1': W1, 'b1': b1}}), got {type(params).__name__}."
        )
    if layout is None:
        if len(params) == 0:
            raise ValueError("pack got an empty mapping: pass at least one named parameter array.")
        arrays = [as_float_array(value, name=f"block {name!r}") for name, value in params.items()]
        layout = Layout(tuple(params.keys()), tuple(a.shape for a in arrays))
        return _concatenate(arrays, layout), layout

    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a fastgrad.Layout (from fastgrad.pack), got {type(layout).__name__}.")
    arrays = []
    used = set()
    for name, shape in zip(layout.names, layout.shapes):
        value = _lookup(params, name)
        if value is None:
            raise ValueError(
                f"Block {name!r} is missing: expected a key {name!r} or 'd{name}' of shape {shape}; "
                f"got keys {list(params.keys())}."
            )
        used.add(name if name in params else "d" + name)
        array = as_float_array(value, name=f"block {name!r}")
        if array.shape != shape:
            raise ValueError(
                f"Block {name!r} has shape {array.shape} but the layout expects {shape}: "
                "pass arrays shaped like the parameters they belong to."
            )
        arrays.append(array)
    extra = [key for key in params.keys() if key not in used]
    if extra:
        raise ValueError(
            f"Unexpected block(s) {extra}: the layout has {list(layout.names)} "
            "(gradients may use the same names or 'd'-prefixed ones)."
        )
    return _concatenate(arrays, layout)


def _concatenate(arrays: list[np.ndarray], layout: Layout) -> np.ndarray:
    theta = np.empty(layout.size, dtype=np.float64)
    for array, start, name in zip(arrays, layout.offsets, layout.names):
        theta[start : start + array.size] = array.ravel(order="C")
    return theta


def unpack(theta: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """Split theta back into named arrays of the original shapes.

    Parameters
    ----------
    theta : array_like
        A vector of ``layout.size`` components.
    layout : Layout
        The layout returned by :func:`pack`.

    Returns
    -------
    dict of str to numpy.ndarray
        New float64 arrays (copies: changing them leaves theta alone).
    """
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a fastgrad.Layout (from fastgrad.pack), got {type(layout).__name__}.")
    theta = as_float_vector(theta, name="theta", allow_nonfinite=True)
    if theta.size != layout.size:
        raise ValueError(
            f"theta has {theta.size} components but the layout describes {layout.size}: "
            "unpack the vector that was packed with this layout."
        )
    return {
        name: theta[start : start + int(np.prod(shape, dtype=np.int64))].reshape(shape).copy()
        for name, shape, start in zip(layout.names, layout.shapes, layout.offsets)
    }
