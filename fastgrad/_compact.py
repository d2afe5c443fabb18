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
