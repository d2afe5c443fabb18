"""Verdicts people can trust: every classic back-prop bug is caught and named, no correct one fails.

Two ways of checking run side by side and must agree: ``DenseNet.gradcheck``
(the dense engine, exact kink detection) and ``fastgrad.gradcheck`` on a cost
built from the plain NumPy reference (``tests/reference.py``; numerical kink
detection). The bugs and the correct back-prop live in ``tests/bugs.py``.
"""

import numpy as np
import pytest

import fastgrad
import reference
from bugs import (
    ARCHITECTURES,
    CATALOGUE,
    CORRECT,
    NETWORKS,
    Architecture,
    BiasMissingInverseM,
    Config,
    MissingPenalty,
    PenaltyOnBiases,
    PenaltyWrongFactor,
    WeightGradientDoubled,
    all_blocks,
    check_dense,
    check_generic,
    course_problem,
    dropout_scales,
    kink_problem,
    layout_of,
    make_problem,
    truly_corrupted_blocks,
)
from fastgrad import _differences
from fastgrad._threads import threads_for

PATHS = ("dense", "generic")
SEEDS = range(20)


@pytest.fixture(autouse=True)
def one_thread():
    """Run these many tiny checks on one thread.

    Verdicts do not depend on the thread count (results are bit-for-bit the same,
    tested in test_numerical.py and test_dense_engine.py), but a parallel region
    costs far more than a 3-4-4-2 network's whole check when the CPUs are busy.
    """
    with threads_for(0):  # no work worth sharing: one thread, the caller's count restored after
        yield


def check(path, backprop, arch, params, X, Y, config, **options):
    if path == "dense":
        return check_dense(backprop, arch, params, X, Y, config, **options)
    return check_generic(backprop, params, X, Y, config, **options)


def describe(report):
    worst = ", ".join(f"{c.name}: {c.grad:.6g} vs {c.approx:.6g}" for c in report.worst(3))
    return f"passed={report.passed} failing={report.failing_blocks} difference={report.difference:.3g} worst: {worst}"


CASES = [(bug, arch) for bug in CATALOGUE for arch in ARCHITECTURES if bug.applies(make_problem(arch, 0)[3])]


# --------------------------------------------------------------------------- #
# The catalogue itself
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda a: a.name)
def test_base_backprop_is_the_reference_backprop(arch):
    params, X, Y, config = make_problem(arch, 1)
    scales = None if config.dropout_scales is None else list(config.dropout_scales)
    expected = reference.gradients(params, X, Y, list(arch.activations), arch.loss, arch.l2, scales)
    got = CORRECT(params, X, Y, config)
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-15)


def test_catalogue_has_fifteen_bugs_each_on_three_architectures():
    assert len({bug.name for bug in CATALOGUE}) == len(CATALOGUE) >= 15
    for bug in CATALOGUE:
        planted = [arch.name for arch in ARCHITECTURES if bug.applies(make_problem(arch, 0)[3])]
        assert len(planted) >= 3, (bug.name, planted)


def test_dropout_masks_are_the_dense_nets_masks():
    for arch in ARCHITECTURES:
        if arch.dropout is None:
            continue
        ours = dropout_scales(arch.layer_sizes, arch.dropout, arch.dropout_seed, arch.m)
        theirs = arch.dense_net().dropout_scales(arch.m)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bug, arch", CASES, ids=[f"{b.name}-{a.name.split()[0]}" for b, a in CASES])
def test_expected_blocks_are_exactly_the_corrupted_ones(bug, arch):
    # The ground truth for localisation: compare with the exact gradient, not the checker.
    params, X, Y, config = make_problem(arch, 0)
    assert truly_corrupted_blocks(bug, params, X, Y, config) == bug.expected(config)


# --------------------------------------------------------------------------- #
# Every bug detected and localised
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bug, arch", CASES, ids=[f"{b.name}-{a.name.split()[0]}" for b, a in CASES])
def test_bug_is_detected_and_localised(bug, arch, path):
    params, X, Y, config = make_problem(arch, 0)
    report = check(path, bug, arch, params, X, Y, config)
    assert not report.passed, describe(report)
    assert set(report.failing_blocks) == set(bug.expected(config)), describe(report)
    # Failing blocks come first, and the worst component is in one of them.
    n_failing = len(report.failing_blocks)
    assert all(not b.passed for b in report.blocks[:n_failing])
    assert report.worst(1)[0].block in bug.expected(config)


@pytest.mark.parametrize("path", PATHS)
def test_course_settings_reach_the_same_verdicts(path):
    # eps=1e-7, threshold=1e-7: the course's formula and threshold, with the rounding allowance.
    wrong = []
    for bug, arch in CASES:
        params, X, Y, config = make_problem(arch, 0)
        report = check(path, bug, arch, params, X, Y, config, eps=1e-7, threshold=1e-7)
        if report.passed or set(report.failing_blocks) != set(bug.expected(config)):
            wrong.append((bug.name, arch.name, describe(report)))
        if not check(path, CORRECT, arch, params, X, Y, config, eps=1e-7, threshold=1e-7).passed:
            wrong.append(("correct", arch.name))
    assert not wrong


@pytest.mark.parametrize("path", PATHS)
def test_course_planted_bugs_fail_in_exactly_W2_and_b1(path):
    buggy, arch, params, X, Y, config = course_problem(bugs=True)
    report = check(path, buggy, arch, params, X, Y, config)
    assert not report.passed
    assert set(report.failing_blocks) == {"W2", "b1"}, describe(report)
    assert {report.blocks[0].name, report.blocks[1].name} == {"W2", "b1"}
    fixed = course_problem(bugs=False)[0]
    assert check(path, fixed, arch, params, X, Y, config).passed


# --------------------------------------------------------------------------- #
# No false failures
# --------------------------------------------------------------------------- #



@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "sizes, activations, loss", NETWORKS, ids=[f"{'-'.join(a)}-{loss}" for _, a, loss in NETWORKS]
)
def test_correct_backprop_passes_at_twenty_seeds(sizes, activations, loss, path):
    failures = []
    for seed in SEEDS:
        # Odd seeds add L2 and dropout, so both are covered on every activation and loss.
        extras = {"l2": 0.2, "dropout": 0.25, "dropout_seed": seed} if seed % 2 and len(sizes) > 3 else {}
        arch = Architecture("net", sizes, activations, loss, m=5, **extras)
        params, X, Y, config = make_problem(arch, seed)
        report = check(path, CORRECT, arch, params, X, Y, config)
        if not report.passed:
            failures.append((seed, describe(report)))
    assert not failures


#: kink_problem puts two units of one example exactly on their kinks, so one
#: parameter can switch them in opposite directions: a back-prop's relu'(0) = 0
#: then lies outside the cost's one-sided slopes. Only the dense engines know the
#: units and enumerate their slopes; a generic cost sees J alone (docs/verdicts.md).
@pytest.mark.parametrize("path", ["dense"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_correct_backprop_passes_exactly_on_kinks(activation, path):
    for seed in SEEDS:
        arch, params, X, Y, config = kink_problem(activation, seed)
        report = check(path, CORRECT, arch, params, X, Y, config)
        assert report.n_kinks > 0
        assert report.passed, (seed, describe(report))


@pytest.mark.parametrize(
    "method, path",
    [
        ("richardson", "dense"),
        ("forward", "dense"),
    ],
)
def test_correct_backprop_passes_exactly_on_kinks_with_every_method(method, path):
    for seed in range(5):
        arch, params, X, Y, config = kink_problem("relu", seed)
        report = check(path, CORRECT, arch, params, X, Y, config, method=method)
        assert report.passed, (seed, describe(report))


@pytest.mark.parametrize("path", ["dense"])  # see test_correct_backprop_passes_exactly_on_kinks
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_bug_is_still_caught_on_a_network_with_kinks(activation, path):
    arch, params, X, Y, config = kink_problem(activation, 0)
    report = check(path, WeightGradientDoubled(), arch, params, X, Y, config)
    assert report.n_kinks > 0
    assert set(report.failing_blocks) == {"W2"}, describe(report)


def two_kinks_problem():
    """One example, W1 and b1 moving Z2[0] up and Z2[1] down, both exactly at 0."""
    arch = Architecture("two kinks", (1, 1, 2, 1), ("relu", "relu", "linear"), "mse", m=1)
    params = {
        "W1": np.array([[1.0]]), "b1": np.array([[0.5]]),
        "W2": np.array([[1.0], [-1.0]]), "b2": np.array([[-1.5], [1.5]]),
        "W3": np.array([[1.0, -0.5]]), "b3": np.array([[0.25]]),
    }
    X, Y = np.array([[1.0]]), np.array([[-1.0]])
    return arch, params, X, Y, Config(arch.layer_sizes, arch.activations, arch.loss)


@pytest.mark.parametrize("path", ["dense"])  # the generic path sees J alone: see below
def test_correct_backprop_passes_when_one_parameter_moves_two_kinks(path):
    # W1 and b1 move A1, which moves Z2[0] up and Z2[1] down, both exactly at 0.
    # A correct back-prop (relu'(0) = 0, as fastgrad's own and the reference) gives
    # dW1 = 0, outside the range of the one-sided slopes (0.625 and 1.25): at a
    # kink crossed by several pre-activations, any mix of their sides is correct.
    arch, params, X, Y, config = two_kinks_problem()
    assert CORRECT(params, X, Y, config)["dW1"][0, 0] == 0.0
    report = check(path, CORRECT, arch, params, X, Y, config)
    assert report.block("W1").kinks == 1
    # Not failed: 0 lies in the range of valid derivatives. That range also holds
    # a missing gradient, so W1 (one component, at the kink) cannot be verified.
    assert report.verdict == "inconclusive", describe(report)
    assert report.block("W1").verdict == "inconclusive"
    assert any("zero is also a valid derivative" in r for r in report.block("W1").reasons)


def test_generic_cost_judges_a_kink_by_the_costs_own_one_sided_slopes():
    # The same point through a generic cost: J alone says the valid range of dW1 is
    # [0.625, 1.25]; relu'(0) = 0 at two units switching in opposite directions lies
    # outside it, and fastgrad says so, naming the component and why (the documented
    # limit of black-box checking; DenseNet knows the units and passes it).
    arch, params, X, Y, config = two_kinks_problem()
    report = check("generic", CORRECT, arch, params, X, Y, config)
    named = {c.name: c.state for c in report.worst(report.checked)}
    assert named["W1[0, 0]"] == "wrong at a kink"  # and b1[0, 0], which moves the same two units
    assert report.low[0] == pytest.approx(0.625, rel=1e-6) and report.high[0] == pytest.approx(1.25, rel=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_a_block_made_only_of_kinks_is_judged_and_a_bug_there_fails(path):
    # Every unit of layer 1 sits on its kink for example 1, so every b1 component
    # is at a kink: b1 is judged against the range of valid derivatives there.
    rng = np.random.default_rng(0)
    arch = Architecture("all b1 at kinks", (3, 4, 4, 2), ("relu", "relu", "linear"), "mse", m=4)
    W1 = rng.integers(-4, 5, (4, 3)) / 4.0
    X = rng.integers(-2, 3, (3, 4)).astype(float)
    b1 = -(W1 @ X)[:, [1]]
    A1 = reference.activation("relu", W1 @ X + b1)
    W2 = rng.integers(-4, 5, (4, 4)) / 4.0
    b2 = -(W2 @ A1)[:, [2]]
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": rng.integers(-4, 5, (2, 4)) / 4.0,
              "b3": rng.integers(-4, 5, (2, 1)) / 4.0}
    Y = rng.standard_normal((2, 4))
    config = Config(arch.layer_sizes, arch.activations, arch.loss)

    correct = check(path, CORRECT, arch, params, X, Y, config)
    assert correct.block("b1").kinks == correct.block("b1").checked == 4
    assert correct.block("b1").verdict != "fail", describe(correct)
    assert correct.block("b1").wrong == 0

    # db1 = m x the right value: each b1 component is crossed by one unit's kink, so
    # the one-sided slopes bound a correct value, and the bug lies outside them.
    buggy = check(path, BiasMissingInverseM(), arch, params, X, Y, config)
    assert "b1" in buggy.failing_blocks, describe(buggy)
    assert buggy.block("b1").wrong >= 3, describe(buggy)
    worst = buggy.worst(1)[0]
    assert worst.block == "b1" and worst.state == "wrong at a kink"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("target_scale", [1e3, 1e5])
def test_correct_backprop_passes_when_the_loss_is_large(target_scale, path):
    # The rounding of J grows with |J|: a fixed threshold alone would fail these.
    for seed in SEEDS:
        arch = Architecture("large loss", (4, 6, 2), ("tanh", "linear"), "mse", m=6)
        params, X, Y, config = make_problem(arch, seed)
        Y = Y * target_scale
        report = check(path, CORRECT, arch, params, X, Y, config)
        assert report.cost_value > 1e5
        assert report.passed, (seed, describe(report))
    # ... and a bug is still caught at that scale.
    report = check(path, WeightGradientDoubled(), arch, params, X, Y, config)
    assert set(report.failing_blocks) == {"W2"}, describe(report)


@pytest.mark.parametrize("path", PATHS)
def test_relu_network_with_many_examples_passes(path):
    # One example crossing a kink changes the slope by ~1/m: the kink must still be
    # recognised, or the central difference is off by half the jump.
    arch = Architecture("many examples", (5, 12, 1), ("relu", "linear"), "mse", m=3000)
    failures = []
    for seed in SEEDS:
        params, X, Y, config = make_problem(arch, seed)
        report = check(path, CORRECT, arch, params, X, Y, config)
        if not report.passed:
            failures.append((seed, report.n_kinks, describe(report)))
    assert not failures


@pytest.mark.parametrize("u", [0.0, 0.1, 0.2, 0.28, 0.3, 0.33, 0.37, 0.45, 0.6, 0.9])
def test_generic_cost_with_a_kink_within_one_step_passes(u):
    # A kink at distance u*h from theta: differentiable at theta, but the central
    # difference straddles the kink. Smaller steps must resolve it: never failed.
    theta = np.array([0.5, -1.2])
    h = _differences.EPS_MACH ** (1 / 3)  # the first step for this cost's relative noise (about one ulp)
    h = (theta[0] + h) - theta[0]
    corner = theta[0] + u * h

    def cost(t):
        return float(np.sin(t[0]) + t[1] ** 2 + 3.0 * max(t[0] - corner, 0.0))

    report = fastgrad.gradcheck(cost, np.array([np.cos(theta[0]), 2 * theta[1]]), theta)
    assert report.passed, describe(report)
    # Only a kink at theta itself is one (there cos(theta) is its left derivative);
    # one within the first step is left behind by smaller steps.
    assert report.n_kinks == (1 if u == 0.0 else 0)


@pytest.mark.parametrize("sizes", [(20, 16, 12, 3), (40, 30, 20, 3), (100, 50, 3)])
def test_directional_check_passes_a_correct_relu_network(sizes):
    # Moving all of theta at once moves every pre-activation: directions that cross
    # a ReLU kink must not fail a correct back-prop.
    activations = ("relu",) * (len(sizes) - 2) + ("linear",)
    arch = Architecture("directional", sizes, activations, "softmax_cross_entropy", m=16)
    failures = []
    for seed in SEEDS:
        params, X, Y, config = make_problem(arch, seed)
        report = check_dense(CORRECT, arch, params, X, Y, config, mode="directional", seed=seed)
        if not report.passed:
            failures.append((seed, report.difference, report.failing_blocks))
    assert not failures


# --------------------------------------------------------------------------- #
# Methods reach their accuracy on a smooth network
# --------------------------------------------------------------------------- #

SMOOTH = Architecture("smooth", (4, 6, 5, 2), ("tanh", "sigmoid", "linear"), "mse", m=8)

#: Relative error of the numerical gradient against the exact one. The steps of
#: ``fastgrad._differences`` balance truncation and rounding at about eps^(2/3)
#: (central), eps^(1/2) (forward), eps^(4/5) (richardson) and eps (complex);
#: the bounds allow the cost's own rounding (tens of ulps) on top.
ACCURACY = {"central": 1e-9, "forward": 1e-6, "richardson": 2e-11, "complex": 1e-15}


def _complex_safe_cost(config, X, Y):
    """The smooth network's cost, written so that complex theta stays complex (complex step)."""
    layout = layout_of(config)

    def cost(theta):
        params = {name: theta[layout.slice(name)].reshape(shape) for name, shape in zip(layout.names, layout.shapes)}
        A = reference.forward(params, X, list(config.activations))[-1][2]
        return np.sum((A - Y) ** 2) / (2 * X.shape[1])

    return cost


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", list(ACCURACY))
def test_each_method_reaches_its_accuracy_on_a_smooth_network(method, path):
    for seed in range(3):
        params, X, Y, config = make_problem(SMOOTH, seed)
        exact = fastgrad.pack(CORRECT(params, X, Y, config), layout_of(config))
        if path == "dense":
            report = SMOOTH.dense_net().gradcheck(params, X, Y, CORRECT(params, X, Y, config), method=method)
        else:
            theta, layout = fastgrad.pack(params)
            cost = _complex_safe_cost(config, X, Y)
            report = fastgrad.gradcheck(cost, exact, theta, layout=layout, method=method)
        assert report.passed, describe(report)
        error = np.linalg.norm(report.approx - exact) / np.linalg.norm(exact)
        assert error < ACCURACY[method], (method, error)
        # Each component is within the error the report itself allows for it.
        assert np.all(np.abs(report.approx - exact) <= report.noise + report.threshold * np.abs(exact))


def test_methods_rank_by_accuracy():
    params, X, Y, config = make_problem(SMOOTH, 0)
    exact = fastgrad.pack(CORRECT(params, X, Y, config), layout_of(config))
    net = SMOOTH.dense_net()
    errors = {
        method: np.linalg.norm(net.gradcheck(params, X, Y, method=method).approx - exact)
        for method in ("forward", "central", "richardson", "complex")
    }
    assert errors["forward"] > errors["central"] > errors["richardson"] > errors["complex"]


# --------------------------------------------------------------------------- #
# Quick checks, float32 gradients, L2 terms
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("path", PATHS)
def test_sampled_check_catches_and_names_a_planted_bug(path):
    arch = ARCHITECTURES[1]
    params, X, Y, config = make_problem(arch, 0)
    report = check(path, WeightGradientDoubled(), arch, params, X, Y, config, sample=3, seed=1)
    assert report.mode == "sampled"
    assert report.checked == 3 * len(layout_of(config).names)
    assert set(report.failing_blocks) == {"W2"}, describe(report)
    again = check(path, WeightGradientDoubled(), arch, params, X, Y, config, sample=3, seed=1)
    np.testing.assert_array_equal(report.indices, again.indices)  # seeded: reproducible
    assert check(path, CORRECT, arch, params, X, Y, config, sample=3, seed=1).passed


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("arch", ARCHITECTURES[:3], ids=lambda a: a.name)
def test_directional_check_catches_and_names_a_planted_bug(arch, path):
    params, X, Y, config = make_problem(arch, 0)
    correct = check(path, CORRECT, arch, params, X, Y, config, mode="directional")
    assert correct.passed, describe(correct)
    report = check(path, WeightGradientDoubled(), arch, params, X, Y, config, mode="directional")
    assert report.mode == "directional" and not report.passed
    assert set(report.failing_blocks) == {"W2"}, [(b.name, b.difference, b.tolerance) for b in report.blocks]


@pytest.mark.parametrize("path", PATHS)
def test_directional_check_names_both_course_bugs(path):
    buggy, arch, params, X, Y, config = course_problem(bugs=True)
    report = check(path, buggy, arch, params, X, Y, config, mode="directional")
    assert not report.passed
    assert set(report.failing_blocks) == {"W2", "b1"}


def _float32(backprop):
    def as_float32(params, X, Y, config):
        return {name: value.astype(np.float32) for name, value in backprop(params, X, Y, config).items()}

    as_float32.name = backprop.name
    return as_float32


@pytest.mark.parametrize("path", PATHS)
def test_float32_gradients_are_accepted_and_checked(path):
    for arch in ARCHITECTURES:
        params, X, Y, config = make_problem(arch, 0)
        report = check(path, _float32(CORRECT), arch, params, X, Y, config)
        assert report.grad_dtype == "float32"
        assert report.passed, describe(report)
        assert any("float32" in note for note in report.notes)
        bug = WeightGradientDoubled()
        buggy = check(path, _float32(bug), arch, params, X, Y, config)
        assert set(buggy.failing_blocks) == {"W2"}, describe(buggy)


def test_l2_report_checks_data_and_penalty_terms_separately():
    arch = ARCHITECTURES[1]
    assert arch.l2 > 0
    params, X, Y, config = make_problem(arch, 0)
    report = check_dense(CORRECT, arch, params, X, Y, config)
    assert report.passed
    assert [t.name for t in report.terms] == ["data term", "L2 penalty"]
    assert all(t.passed for t in report.terms)

    for bug, words in [(MissingPenalty(), "missing"), (PenaltyWrongFactor(), "0.5")]:
        report = check_dense(bug, arch, params, X, Y, config)
        data, penalty = report.terms
        assert data.passed, data
        assert not penalty.passed and words in penalty.note, penalty
        assert set(report.failing_blocks) == {f"W{l}" for l in range(1, arch.n_layers + 1)}

    # A data-term bug is blamed on the data term, not on the penalty.
    report = check_dense(WeightGradientDoubled(), arch, params, X, Y, config)
    data, penalty = report.terms
    assert not data.passed and penalty.passed


def test_check_after_training_catches_a_bug_invisible_at_initialisation():
    # With the usual zero biases at initialisation, penalising the biases changes nothing;
    # after some training it does: the course's "check again after some training".
    bug = PenaltyOnBiases()
    arch = ARCHITECTURES[4]
    params, X, Y, config = make_problem(arch, 0)
    net = arch.dense_net()
    result = net.check_before_and_after_training(
        net.init(0), X, Y, backward=lambda p, X_, Y_: bug(p, X_, Y_, config), steps=50, learning_rate=0.1,
    )
    assert result.before.passed
    assert not result.after.passed and not result.passed
    assert set(result.after.failing_blocks) == set(bug.expected(config))


def test_penalty_on_biases_is_named_as_a_penalty_bug():
    arch = ARCHITECTURES[1]
    params, X, Y, config = make_problem(arch, 0)
    data, penalty = check_dense(PenaltyOnBiases(), arch, params, X, Y, config).terms
    assert data.passed and not penalty.passed, (data, penalty)


def test_every_block_is_named_in_the_report():
    arch = ARCHITECTURES[3]
    params, X, Y, config = make_problem(arch, 0)
    report = check_dense(CORRECT, arch, params, X, Y, config)
    assert {b.name for b in report.blocks} == set(all_blocks(config))


# --------------------------------------------------------------------------- #
# The script that prints the rates
# --------------------------------------------------------------------------- #


def _script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "catalogue.py"
    spec = importlib.util.spec_from_file_location("bug_catalogue_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_reports_full_rates_and_exits_zero(tmp_path, capsys):
    script = _script()
    output = tmp_path / "catalogue.md"
    # (The external catalogue has its own tests: tests/external.)
    assert script.main(["--bug-seeds", "1", "--seeds", "1", "--no-external", "--output", str(output)]) == 0
    text = output.read_text()
    n_checks = 2 * (len(CASES) + 1)  # both engines; every planted bug, and the course's pair
    assert f"| detection rate | {n_checks}/{n_checks} = 100.0% | 100% |" in text
    assert f"| localisation rate | {n_checks}/{n_checks} = 100.0% | 100% |" in text
    assert "= 0.0% | 0% |" in text and "**Verdict: PASS.**" in text
    assert f"| directional (8 random directions) | {n_checks - 2}/{n_checks - 2} |" in text
    assert text in capsys.readouterr().out


def test_script_exits_non_zero_when_a_verdict_is_wrong():
    script = _script()
    args = type("Args", (), {"bug_seeds": 1, "seeds": 1})()
    row = {"bug": "b", "description": "d", "architecture": "a", "expected": frozenset({"W2"}),
           "seen": {frozenset()}, "checks": 2, "detected": 1, "localised": 1}
    clean = {"group": "g", "checks": 2, "failures": 0, "inconclusive": 0, "kinks": 0, "failed": []}
    text, ok = script.render([row], [clean], args, 0.0)
    assert not ok and "**Verdict: FAIL.**" in text and "50.0%" in text
    full = dict(row, seen={frozenset({"W2"})}, detected=2, localised=2)
    assert script.render([full], [clean], args, 0.0)[1]
    false_failure = dict(clean, failures=1, failed=["net [dense]: ('W1',) difference 0.1"])
    text, ok = script.render([full], [false_failure], args, 0.0)
    assert not ok and "net [dense]" in text
    too_unsure = dict(clean, checks=10, inconclusive=1, failed=["net [dense]: inconclusive: reason"])
    assert not script.render([full], [too_unsure], args, 0.0)[1]  # 10% > the 2% budget
    mode = {"mode": "directional", "checks": 2, "detected": 2, "localised": 1, "required": True, "missed": ["x"]}
    assert not script.render([full], [clean], args, 0.0, [mode])[1]
    assert script.render([full], [clean], args, 0.0, [dict(mode, required=False)])[1]
