"""The second red team's cases (tests/redteam2/cases.py, written without reading tests/), as tests.

Contract per case: a correct gradient never fails; a planted bug never passes;
an inconclusive verdict always gives its reason; bad input raises a clear
ValueError or TypeError. Inconclusive is allowed either way (the cases include
points no finite difference can settle). The violations left are listed below
with what they are; each is a strict xfail, so fixing one makes the suite say so.
"""

from __future__ import annotations

import warnings

import pytest

from tests.redteam2 import cases as redteam

if not redteam.CASES:
    for build in redteam.BUILDERS:
        build()

#: (Fixed: eight bugs of relative size 1e-4 to 4e-4 that passed within a stated
#: tolerance of 1e-4 to 8e-4 are inconclusive now that a block whose measured
#: error alone allows more than MAX_ALLOWANCE = 1e-4 cannot pass.)
#: A block whose true gradient is 1e-10 next to components of 1e6: float64 J
#: cannot move by it, every difference is exactly zero, and a zeroed block
#: matches them exactly; it is measured against the whole gradient (1e-16 of it).
_BELOW_FLOAT64 = "a zeroed block of size 1e-10 beside 1e6: below what a float64 cost can show"

#: The whole check is exactly zero: a cost of 1e14 + a logistic loss moves by
#: less than an ulp at every step, and the zero gradient matches the all-zero
#: differences. fastgrad passes an all-zero check (a zero gradient at a
#: stationary point is right, and a wrong non-zero one would show); it cannot
#: yet tell "the cost does not move" from "the cost moves below its rounding".
_FLAT_ALL_ZERO = "an all-zero check of a cost flat to rounding (1e14 + a logistic loss) passes the zero gradient"

KNOWN_VIOLATIONS = {
    "B-offset1e+14-logreg/zero": _FLAT_ALL_ZERO,
    "D-tiny-own-block/zero[tiny]": _BELOW_FLOAT64,
    "D-tiny-linear/zero[tiny]": _BELOW_FLOAT64,
}


def _params():
    out = []
    for name, kind, thunk in redteam.CASES:
        marks = []
        if name in KNOWN_VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[name]))
        out.append(pytest.param(kind, thunk, id=name, marks=marks))
    return out


@pytest.mark.parametrize("kind, thunk", _params())
def test_contract(kind, thunk):
    if kind == "badinput":
        with pytest.raises((ValueError, TypeError)):
            thunk()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = thunk()
    outcome = redteam.judge(kind, report)
    assert outcome != "VIOLATION", (
        f"{kind}: verdict {report.verdict}, difference {report.difference:.3g}, tolerance {report.tolerance:.3g}, "
        f"reasons {report.reasons}")
