"""Result fields that a full check stores without a per-component array.

A full check of n components covers ``0, 1, ..., n - 1`` in order: its
:class:`~fastgrad.numerical.Estimate` and :class:`~fastgrad.report.Report`
store ``None`` for their indices and make the array when it is read, so a
check of millions of components does not keep millions of indices (issue 13:
the memory a check adds).
"""

from __future__ import annotations

import numpy as np


class EveryComponentWhenNone:
    """A dataclass field descriptor: the int64 components a result covers.

    Assigned an array, it keeps it; assigned None, it stands for every
    component ``0 .. len(owner.approx) - 1`` in order, and each read returns a
    new read-only ``arange`` (the array itself is never kept).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> np.ndarray:
        if obj is None:
            # Asked by @dataclass for a default: there is none.
            raise AttributeError(self.name)
        stored = obj.__dict__[self.slot]
        if stored is not None:
            return stored
        everything = np.arange(np.asarray(obj.approx).size, dtype=np.int64)
        everything.flags.writeable = False
        return everything

    def __set__(self, obj: object, value: np.ndarray | None) -> None:
        obj.__dict__[self.slot] = value


def stored(obj: object, name: str) -> np.ndarray | None:
    """What ``obj``'s descriptor field ``name`` holds: its array, or None for every component in order."""
    return obj.__dict__["_" + name]


class Patch:
    """A field equal to another (its base) except at a few rows: ``rows`` (ascending int64) hold ``values``.

    The measured rounding is the error wherever one pair of steps decided a
    component (there is no truncation to tell apart); only the few components
    refined, or at a kink, differ. Stored this way, a full check of millions
    of components keeps one array for both.
    """

    __slots__ = ("rows", "values")

    def __init__(self, rows: np.ndarray, values: np.ndarray) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.float64)

    def __reduce__(self):
        return (Patch, (self.rows, self.values))

    def over(self, base: np.ndarray, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """The field at ``rows`` (all; a slice of step 1; positions; or a boolean mask) as a new array."""
        if rows is None or isinstance(rows, slice):
            start = 0 if rows is None else rows.start or 0
            out = np.array(base if rows is None else base[rows], dtype=np.float64)
            first, last = np.searchsorted(self.rows, [start, start + out.size])
            out[self.rows[first:last] - start] = self.values[first:last]
            return out
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        out = np.array(base[rows], dtype=np.float64)
        if self.rows.size:
            place = np.minimum(np.searchsorted(self.rows, rows), self.rows.size - 1)
            found = self.rows[place] == rows
            out[found] = self.values[place[found]]
        return out

    def sub(self, rows: slice) -> "Patch":
        """The patch of the field's rows ``rows`` (a slice of step 1), numbered from its start."""
        start = rows.start or 0
        first, last = np.searchsorted(self.rows, [start, np.iinfo(np.int64).max if rows.stop is None else rows.stop])
        return Patch(self.rows[first:last] - start, self.values[first:last])


class RoundingOfError:
    """A dataclass field descriptor for the rounding part of an ``error`` field.

    Assigned an array, it keeps it; assigned a :class:`Patch`, it stands for
    ``error`` with the patch's rows replaced, and each read returns that as a
    new read-only array (only the patch is kept). :func:`stored` gives what is kept.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> np.ndarray:
        if obj is None:
            raise AttributeError(self.name)  # no default for @dataclass
        stored = obj.__dict__[self.slot]
        if not isinstance(stored, Patch):
            return stored
        full = stored.over(obj.error)
        full.flags.writeable = False
        return full

    def __set__(self, obj: object, value: np.ndarray | Patch) -> None:
        obj.__dict__[self.slot] = value


def rounding_rows(rounding: np.ndarray | Patch, error: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
    """``rounding[rows]`` as an array, for an array or a :class:`Patch` over ``error`` (a new array if patched)."""
    return rounding.over(error, rows) if isinstance(rounding, Patch) else rounding[rows]
