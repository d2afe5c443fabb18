"""Rendering reports for people: verdict first, blocks, worst components, numbers, colour."""

import re
from dataclasses import replace

import numpy as np
import pytest

import fastgrad
from fastgrad._format import format_number, render_report

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def quadratic(theta):
    return float(0.5 * theta @ theta + np.sum(np.sin(theta)))


def quadratic_grad(theta):
    return theta + np.cos(theta)


def layout_case(n_blocks=3, seed=0):
    rng = np.random.default_rng(seed)
    params = {f"B{i}": rng.normal(size=(2, 3)) for i in range(n_blocks)}
    theta, layout = fastgrad.pack(params)
    return theta, layout


def failing_report(wrong_block="B1", **kwargs):
    theta, layout = layout_case()
    grads = fastgrad.unpack(quadratic_grad(theta), layout)
    grads[wrong_block] = grads[wrong_block] * 2.0
    return fastgrad.gradcheck(quadratic, grads, theta, layout=layout, progress=False, **kwargs)


def passing_report(**kwargs):
    theta, layout = layout_case()
    return fastgrad.gradcheck(quadratic, quadratic_grad(theta), theta, layout=layout, progress=False, **kwargs)


@pytest.mark.parametrize(
    "value, digits, expected",
    [
        (0.00000011890913, 3, "1.19e-07"),
        (0.2850931567761623, 3, "0.285"),
        (2.5316, 3, "2.53"),
        (1.0, 3, "1"),
        (0.0, 3, "0"),
        (-0.05342171, 6, "-0.0534217"),
        (12345.6, 3, "1.23e+04"),
        (9999.7, 3, "1.00e+04"),
        (0.0009995, 3, "9.99e-04"),
        (float("inf"), 3, "inf"),
        (float("-inf"), 3, "-inf"),
        (float("nan"), 3, "nan"),
        (None, 3, "auto"),
    ],
)
def test_numbers_are_formatted_for_people(value, digits, expected):
    assert format_number(value, digits) == expected


def test_failing_report_leads_with_verdict_difference_threshold_and_tolerance():
    report = failing_report()
    lines = str(report).splitlines()
    first = lines[0]
    assert first.startswith("gradient check FAILED")
    assert f"difference {format_number(report.difference)}" in first
    assert f"threshold {format_number(report.threshold)}" in first
    assert f"tolerance {format_number(report.tolerance)}" in first
    assert lines[1].strip() == "wrong: block B1"


def test_passing_report_says_so_and_names_nothing_wrong():
    text = str(passing_report())
    assert text.splitlines()[0].startswith("gradient check PASSED")
    assert "wrong:" not in text
    assert "FAIL" not in text


def test_block_table_follows_the_reports_block_order_with_status():
    report = failing_report("B2")
    lines = str(report).splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["block", "shape"])
    for column in ("checked", "difference", "tolerance", "status", "kinks"):
        assert column in lines[header]
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(report.blocks)]]
    assert [row[0] for row in rows] == [b.name for b in report.blocks]
    assert rows[0][0] == "B2" and "FAIL" in rows[0]
    assert all("ok" in row for row in rows[1:])
    # Shape and difference of each block, as formatted numbers.
    assert rows[0][1:3] == ["(2,", "3)"]
    assert format_number(report.blocks[0].difference) in rows[0]


def test_worst_components_are_listed_with_block_index_grad_approx_and_score():
    report = failing_report("B0")
    lines = str(report).splitlines()
    start = next(i for i, line in enumerate(lines) if "worst components" in line)
    assert lines[start + 1].split() == ["component", "grad", "approx", "|diff|", "error", "score", "state"]
    worst = report.worst(5)
    rows = lines[start + 2 : start + 2 + len(worst)]
    for component, row in zip(worst, rows):
        assert row.strip().startswith(component.name)
        for value in (format_number(component.grad, 6), format_number(component.approx, 6),
                      format_number(component.abs_error), format_number(component.error),
                      format_number(component.score), component.state):
            assert value in row
    assert worst[0].block == "B0" and worst[0].score > 1


def test_no_long_fixed_point_numbers():
    text = str(passing_report()) + str(failing_report())
    assert not re.search(r"\d\.\d{8,}", text), text  # at most 6 significant digits
    assert not re.search(r"0\.000", text), text  # below 1e-3: scientific notation


def test_colour_only_when_asked_and_it_changes_nothing_else():
    report = failing_report()
    plain = render_report(report, color=False)
    coloured = render_report(report, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" not in str(report)
    assert "\x1b[1;31m" in coloured  # bold red verdict
    assert ANSI.sub("", coloured) == plain
    assert "\x1b[1;32m" in render_report(passing_report(), color=True)  # bold green verdict


def test_str_is_the_plain_rendering():
    report = failing_report()
    assert str(report) == render_report(report, color=False)


def test_many_blocks_are_summarised_after_the_failing_ones():
    theta, layout = layout_case(n_blocks=30)
    grads = fastgrad.unpack(quadratic_grad(theta), layout)
    grads["B17"] = -grads["B17"]
    report = fastgrad.gradcheck(quadratic, grads, theta, layout=layout, progress=False)
    text = render_report(report, max_blocks=5)
    assert "... 25 more blocks (all ok)" in text
    assert "B17" in text.splitlines()[1]


def test_kinks_are_counted_and_said_to_be_judged_against_their_range():
    # |t| at 0 has one-sided slopes -1 and 1; grad 0.5 lies between them.
    report = fastgrad.gradcheck(lambda t: float(np.abs(t).sum()), np.array([0.5, 1.0]), np.array([0.0, 1.0]))
    assert report.n_kinks == 1 and report.verdict == "pass"
    text = str(report)
    assert "1 component at a kink" in text
    assert "judged against the range of one-sided derivatives" in text


def test_a_block_at_kinks_where_zero_is_valid_is_inconclusive_and_says_why():
    layout = fastgrad.Layout(("a", "b"), ((2,), (1,)))
    # |a| at a = 0 is a kink in both components; grads 0.5 and -0.3 are valid there, but so is zero.
    report = fastgrad.gradcheck(
        lambda t: float(np.abs(t[:2]).sum() + t[2] ** 2), np.array([0.5, -0.3, 2.0]), np.array([0.0, 0.0, 1.0]),
        layout=layout,
    )
    assert report.verdict == "inconclusive" and report.inconclusive_blocks == ("a",)
    lines = str(report).splitlines()
    assert lines[0].startswith("gradient check INCONCLUSIVE")
    assert any("cannot tell: a: every component sits at a kink where zero is also a valid derivative" in line
               for line in lines)
    row = next(line.split() for line in lines if line.split()[:1] == ["a"])
    assert row[-3:] == ["cannot", "tell", "2"]  # status and kinks


def test_a_value_outside_the_range_at_a_kink_fails():
    report = fastgrad.gradcheck(lambda t: float(np.abs(t).sum()), np.array([5.0, 1.0]), np.array([0.0, 1.0]))
    assert report.verdict == "fail"
    assert report.worst(1)[0].state == "wrong at a kink"


def test_sampled_report_says_sampled():
    report = passing_report(sample=2)
    assert f"{report.checked} of {report.size} components sampled" in str(report)


def test_directional_report_lists_directions_and_narrows_to_the_block():
    report = failing_report("B1", mode="directional")
    text = str(report)
    assert report.mode == "directional"
    assert "random directions through all 18 components" in text
    assert "worst directions" in text and "grad . v" in text
    assert "worst components" not in text
    assert text.splitlines()[1].strip() == "wrong: block B1"
    assert "each block on its own" in text


def test_interrupted_report_says_it_is_partial():
    report = replace(passing_report(indices=np.arange(5)), interrupted=True)
    first = str(report).splitlines()[0]
    assert first.startswith("gradient check PASSED so far (interrupted after 5 of 18 components)")


def test_report_interrupted_before_any_component_says_so():
    full = passing_report()
    nothing = np.zeros(0, dtype=bool)
    report = fastgrad.merge_reports(replace(full, interrupted=True))  # recomputed from its estimate
    empty = replace(report, **{name: getattr(report, name)[nothing] for name in
                               ("grad", "approx", "indices", "error", "rounding", "steps", "state", "low", "high")})
    first = str(empty).splitlines()[0]
    assert first == "gradient check INTERRUPTED: stopped (Ctrl-C) before any of the 18 components was checked"
