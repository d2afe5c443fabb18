"""Rendering a :class:`~fastgrad.report.Report` for people.

The layout, top to bottom: the verdict with the difference, the threshold and
the tolerance (threshold plus what rounding explains); what was checked; a
table of blocks in the report's order (failing blocks first); the worst
components; the terms of the cost checked on their own (L2); notes. A
directional report lists its random directions instead of components.

Numbers are written for people (``1.19e-07``, ``0.285``), never as long
fixed-point strings. ANSI colour is added only when asked for
(``color=True``); the command line asks when its output is a terminal and
``NO_COLOR`` is unset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastgrad.report import Report

__all__ = ["render_report", "format_number"]

_RESET = "\x1b[0m"
_STYLES = {"bold": "1", "red": "31", "green": "32", "yellow": "33", "dim": "2"}

#: How many blocks the table shows before summarising the rest (failing blocks come first).
MAX_BLOCKS = 20
#: How many of the worst components are listed.
WORST = 5


def format_number(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, in the notation a person reads fastest.

    Plain notation between 0.001 and 10,000 (``0.285``, ``2.53``, ``1234``),
    scientific outside (``1.19e-07``, ``3.2e+05``); ``0`` for zero, ``inf`` and
    ``nan`` as such, ``auto`` for None (a step chosen per component).

    Examples
    --------
    >>> format_number(0.00000011890913)
    '1.19e-07'
    >>> format_number(0.2850931567761623)
    '0.285'
    >>> format_number(-0.05342171, digits=6)
    '-0.0534217'
    """
    if x is None:
        return "auto"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0.0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        text = f"{x:.{digits}g}"
        # .g switches to exponent notation near the upper edge after rounding (9999.7 -> 1e+04).
        return text if "e" not in text else f"{x:.{digits - 1}e}"
    return f"{x:.{digits - 1}e}"


def _paint(text: str, style: str | None, color: bool) -> str:
    if not color or not style:
        return text
    codes = ";".join(_STYLES[s] for s in style.split("+"))
    return f"\x1b[{codes}m{text}{_RESET}"


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[bool],
    styles: Sequence[Sequence[str | None]] | None = None,
    color: bool = False,
    indent: str = "  ",
) -> list[str]:
    """Aligned columns; colour is applied after padding so alignment survives it."""
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(header)]

    def line(cells: Sequence[str], cell_styles: Sequence[str | None] | None) -> str:
        out = []
        for c, cell in enumerate(cells):
            padded = cell.rjust(widths[c]) if right[c] else cell.ljust(widths[c])
            out.append(_paint(padded, cell_styles[c] if cell_styles else None, color))
        return (indent + "  ".join(out)).rstrip()

    lines = [line(header, ["dim"] * len(header))]
    for r, row in enumerate(rows):
        lines.append(line(row, styles[r] if styles else None))
    return lines


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


_WORDS = {"pass": ("PASSED", "green"), "fail": ("FAILED", "red"), "inconclusive": ("INCONCLUSIVE", "yellow")}


def _verdict(report: "Report", color: bool) -> list[str]:
    if getattr(report, "interrupted", False) and report.checked == 0:
        return [_paint("gradient check INTERRUPTED", "bold+yellow", color)
                + f": stopped (Ctrl-C) before any of the {report.size:,} components was checked"]
    word, hue = _WORDS[report.verdict]
    verdict = _paint(f"gradient check {word}", "bold+" + hue, color)
    if getattr(report, "interrupted", False):
        verdict += " " + _paint(f"so far (interrupted after {report.checked:,} of {report.size:,} components)",
                                "yellow", color)
    lines = [
        f"{verdict}: difference {format_number(report.difference)}, "
        f"tolerance {format_number(report.tolerance)} "
        f"(threshold {format_number(report.threshold)} plus measured numerical error)"
    ]
    failing = [b for b in report.blocks if b.verdict == "fail"]
    if failing and report.difference <= report.tolerance:
        # The whole passes its rule: say which block's rule (or component) failed.
        b = failing[0]
        why = (f"{b.wrong} component{'s' if b.wrong != 1 else ''} wrong beyond {'their' if b.wrong != 1 else 'its'} "
               "measured error" if b.wrong else
               f"difference {format_number(b.difference)} > tolerance {format_number(b.tolerance)}")
        lines[0] = f"{verdict}: in block {b.name}, {why} (all of theta: difference " \
                   f"{format_number(report.difference)}, tolerance {format_number(report.tolerance)})"
    if report.verdict == "fail":
        culprits = list(report.failing_blocks)
        failing_terms = [t.name for t in report.terms if not t.passed]
        if culprits:
            label = "block" if len(culprits) == 1 else "blocks"
            lines.append("  wrong: " + _paint(f"{label} {', '.join(culprits)}", "red", color))
        if failing_terms:
            lines.append("  wrong: " + _paint(", ".join(failing_terms), "red", color))
        if not culprits and not failing_terms and report.mode == "directional" and not report.blocks:
            lines.append("  wrong: somewhere in theta (no layout to narrow it down to a block)")
    for reason in report.reasons:
        lines.append("  " + _paint("cannot tell: ", "yellow", color) + reason)
    return lines


def _summary(report: "Report") -> str:
    parts = []
    if report.mode == "directional":
        n_dirs = report.checked
        parts.append(f"{n_dirs} random direction{'s' if n_dirs != 1 else ''} through all {report.size:,} components")
    else:
        what = "sampled" if report.mode == "sampled" else "checked"
        parts.append(f"{report.checked:,} of {report.size:,} components {what}")
    parts.append(f"method {report.method}")
    if report.eps is not None:
        parts.append(f"eps {format_number(report.eps)}")
    else:
        parts.append("eps auto" if report.mode == "directional" else "eps auto (per component)")
    parts.append(f"cost {format_number(report.cost_value, 6)}")
    if report.block_dtypes:
        names = report.layout.names
        parts.append("grad " + ", ".join(f"{n} {d}" for n, d in zip(names, report.block_dtypes) if d != "float64")
                     + ", the rest float64")
    elif report.grad_dtype != "float64":
        parts.append(f"grad {report.grad_dtype}")
    line = "  " + ", ".join(parts)
    line += f"\n  measured noise of the cost {format_number(report.noise_level)}"
    if report.n_kinks:
        n = report.n_kinks
        line += (f"\n  {n:,} component{'s' if n != 1 else ''} at a kink (not differentiable here, "
                 "e.g. a ReLU switching): judged against the range of one-sided derivatives")
    return line


def _blocks(report: "Report", color: bool, max_blocks: int) -> list[str]:
    if not report.blocks:
        return []
    directional = report.mode == "directional"
    shown = report.blocks[:max_blocks]
    header = ["block", "shape", "checked", "difference", "tolerance", "status"]
    right = [False, False, True, True, True, False]
    if not directional:
        header.append("kinks")
        right.append(True)
    rows, styles = [], []
    for b in shown:
        if b.verdict == "fail":
            status, status_style = "FAIL", "bold+red"
        elif b.verdict == "inconclusive":
            status, status_style = "cannot tell", "yellow"
        else:
            status, status_style = "ok", "green"
        row = [b.name, _shape(b.shape), str(b.checked), format_number(b.difference), format_number(b.tolerance), status]
        style = [None, None, None, None, None, status_style]
        if not directional:
            row.append(str(b.kinks) if b.kinks else "-")
            style.append("yellow" if b.kinks else None)
        rows.append(row)
        styles.append(style)
    lines = [""]
    if directional:
        lines.append("  each block on its own (random directions restricted to the block):")
    lines += _table(header, rows, right=right, styles=styles, color=color)
    hidden = report.blocks[max_blocks:]
    if hidden:
        failing = sum(b.verdict == "fail" for b in hidden)
        lines.append(
            f"  ... {len(hidden)} more block{'s' if len(hidden) != 1 else ''} "
            + (f"({failing} failing)" if failing else "(all ok)")
        )
    return lines


def _worst(report: "Report", color: bool, k: int) -> list[str]:
    components = report.worst(k)
    if not components:
        return []
    rows, styles = [], []
    for c in components:
        suspect = c.score > 1.0
        rows.append(
            [c.name, format_number(c.grad, 6), format_number(c.approx, 6), format_number(c.abs_error),
             format_number(c.error), format_number(c.score), c.state]
        )
        styles.append([None, None, None, "red" if suspect else None, None, "red" if suspect else None, None])
    lines = ["", "  worst components (|grad - approx| against the measured error; score > 1 is beyond tolerance):"]
    lines += _table(["component", "grad", "approx", "|diff|", "error", "score", "state"], rows,
                    right=[False, True, True, True, True, True, False], styles=styles, color=color)
    return lines


def _directions(report: "Report", color: bool, k: int) -> list[str]:
    found = report.directional
    if found is None:
        return []
    analytic, numerical, noise = found.analytic, found.numerical, found.noise
    n = len(analytic)
    # The worst directions first, as for components.
    order = sorted(range(n), key=lambda d: -abs(float(analytic[d]) - float(numerical[d])))[:k]
    rows, styles = [], []
    for d in order:
        diff = abs(float(analytic[d]) - float(numerical[d]))
        scale = abs(float(analytic[d])) + abs(float(numerical[d]))
        suspect = diff > report.threshold * scale + float(noise[d])
        rows.append([str(d), format_number(analytic[d], 6), format_number(numerical[d], 6), format_number(diff)])
        styles.append([None, None, None, "red" if suspect else None])
    lines = ["", f"  worst directions (grad . v against the difference quotient along v; {len(order)} of {n}):"]
    lines += _table(["direction", "grad . v", "numerical", "|diff|"], rows,
                    right=[True, True, True, True], styles=styles, color=color)
    return lines


def _terms(report: "Report", color: bool) -> list[str]:
    if not report.terms:
        return []
    rows, styles = [], []
    for t in report.terms:
        rows.append([t.name, format_number(t.difference), format_number(t.tolerance),
                     "ok" if t.passed else "FAIL", t.note])
        styles.append([None, None, None, "green" if t.passed else "bold+red", None])
    lines = ["", "  terms of the cost, each checked on its own:"]
    lines += _table(["term", "difference", "tolerance", "status", "note"], rows,
                    right=[False, True, True, False, False], styles=styles, color=color)
    return lines


def render_report(
    report: "Report", color: bool = False, *, worst: int = WORST, max_blocks: int = MAX_BLOCKS
) -> str:
    """The report as text for a person, the verdict first.

    Parameters
    ----------
    report : Report
        A report from any check (full, sampled or directional).
    color : bool
        Add ANSI colour codes (for a terminal). Off by default, so that
        ``str(report)`` is plain text in logs and test output.
    worst : int
        How many of the worst components (or directions) to list.
    max_blocks : int
        How many blocks the table shows; the rest are summarised in one line
        (failing blocks always come first).

    Returns
    -------
    str
        Several lines, no trailing newline. The first line reads
        ``gradient check PASSED: ...`` or ``gradient check FAILED: ...``
        (``PASSED so far (interrupted ...)`` for a partial report, and
        ``gradient check INTERRUPTED: ...`` when nothing was checked).
    """
    lines = _verdict(report, color)
    lines.append(_summary(report))
    lines += _blocks(report, color, max_blocks)
    if report.mode == "directional":
        lines += _directions(report, color, worst)
    else:
        lines += _worst(report, color, worst)
    lines += _terms(report, color)
    if report.notes:
        lines.append("")
        lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)
