"""The contract, asserted on every red-team case.

Known contract violations found by the red team are marked xfail(strict=True):
the suite stays green today and turns red (XPASS) the day one is fixed, so the
marker can be removed.
"""

import pytest

from tests.redteam.cases import CASES
from tests.redteam.run import classify

KNOWN_VIOLATIONS: dict[str, str] = {
    # The twelve violations first found here are fixed (noise measured at spacings
    # relative to each parameter, error targets that follow the table, steps that
    # shrink where the cost is not finite, directions weighted per block), and the
    # thirteenth (a rounding-bound cost at |theta| ~ 1e8, whose steps must reach
    # ~1e3) by rounding-bound components jumping up the table and moving its window.
}

JUDGED = [c for c in CASES if c.kind != "info"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_is_labelled_right(case):
    ok, note = case.verify()
    assert ok, note


def _params():
    for c in JUDGED:
        marks = []
        if c.name in KNOWN_VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[c.name]))
        yield pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_contract(case):
    try:
        report, exc = case.run(), None
    except Exception as e:  # noqa: BLE001
        report, exc = None, e
    outcome, violation = classify(case, report, exc)
    assert violation is None, f"{case.name}: {outcome}: {violation}\n{report if report is not None else exc}"


MPMATH_FORMS = {
    # family prefix -> derivative of one component's term, written in mpmath
    "tiny_scale_1e-8_alone/": lambda mp, x: mp.diff(lambda u: mp.log1p((mp.mpf(10) ** 8 * u) ** 2), x),
    "log_theta_1e+05/": lambda mp, x: mp.diff(mp.log, x),
    "sqrt_small_positive/": lambda mp, x: mp.diff(mp.sqrt, x),
    "sin_1e4_frequency/": lambda mp, x: mp.diff(lambda u: mp.sin(10 ** 4 * u) / 10 ** 4, x),
    "sin_at_1e6/": lambda mp, x: mp.diff(mp.sin, x),
}


@pytest.mark.parametrize("prefix", sorted(MPMATH_FORMS))
def test_reference_gradients_against_mpmath(prefix):
    """The violations' reference gradients, re-derived at 40 digits (independent of complex step)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    case = next(c for c in CASES if c.name.startswith(prefix) and c.kind == "correct")
    for k, x in enumerate(case.theta):
        exact = float(MPMATH_FORMS[prefix](mpmath, mpmath.mpf(float(x))))
        # 1e-11: the float64 cost rounds 1e4*x (sin_1e4 differs from the exact function by ~2e-13)
        assert abs(case.ref[k] - exact) <= 1e-11 * abs(exact), (k, case.ref[k], exact)
