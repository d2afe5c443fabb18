"""Red-team 3: the verdict contract on models the authors did not write.

    python -m pytest tests/redteam3 -q

Per case: a correct gradient is never "fail" ("inconclusive" only with a
reason); a bug is never "pass", and a "fail" names exactly the blocks the bug
puts outside their valid values ("inconclusive" only with a reason).  Known
violations are xfail(strict=True).  One aggregate test: at most 2% of the
correct cases inconclusive.
"""
import pytest

from .cases import KNOWN_VIOLATIONS, REGISTRY, build
from .core import run_case

NAMES = list(REGISTRY)
_OUTCOMES = {}


def _outcome(name):
    if name not in _OUTCOMES:
        c = build(name)
        _OUTCOMES[name] = (c, None if c is None else run_case(c))
    return _OUTCOMES[name]


def _params():
    for n in NAMES:
        if not (n.startswith("cli/") or n.startswith("testing/")) and build(n) is None:
            continue  # a variant with no label (it stays inside the range of valid derivatives): not a case
        marks = []
        if n in KNOWN_VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[n]))
        yield pytest.param(n, marks=marks, id=n)


@pytest.mark.parametrize("name", list(_params()))
def test_verdict_contract(name):
    c, o = _outcome(name)
    assert c is not None, name
    info = f"{name}: verdict {o.verdict}, failing {o.failing}, expected {c.expected}, reasons {o.reasons}\n{o.text}"
    if c.kind == "correct":
        assert o.verdict != "fail", info
        assert o.verdict == "pass" or (o.verdict == "inconclusive" and o.reasons), info
    else:
        assert o.verdict != "pass", info
        if o.verdict == "fail":
            assert c.expected is None or tuple(sorted(o.failing)) == tuple(sorted(c.expected)), info
        else:
            assert o.verdict == "inconclusive" and o.reasons, info


@pytest.mark.xfail(strict=True, reason="more than 2% of the correct cases inconclusive: float32 costs (their "
                                       "rounding allows more than MAX_ALLOWANCE = 1e-4), near-optimum gradients "
                                       "~1e-8 and ~1e-10, cost + 1e10")
def test_inconclusive_rate_of_correct_cases():
    n = inc = 0
    for name in NAMES:
        if name.startswith("cli/") or name.startswith("testing/"):
            continue
        c, o = _outcome(name)
        if c is None or c.kind != "correct":
            continue
        n += 1
        inc += o.verdict == "inconclusive"
    assert inc <= 0.02 * n, f"{inc} of {n} correct cases inconclusive"
