"""Rendering a Report for people: verdict first, then blocks, then worst components."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastgrad.report import Report


def _number(x: float | None) -> str:
    if x is None:
        return "auto"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def render_report(report: "Report", color: bool = False) -> str:
    """A short readable summary of ``report``, the verdict first."""
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"gradient check {verdict}: difference {_number(report.difference)} "
        f"(threshold {_number(report.threshold)}, tolerance with rounding {_number(report.tolerance)})",
        f"  {report.checked} of {report.size} components, method {report.method}, eps {_number(report.eps)}, "
        f"mode {report.mode}" + (f", {report.n_kinks} at a kink (left out)" if report.n_kinks else ""),
    ]
    if report.blocks:
        lines.append("  block        shape          difference   status")
        for b in report.blocks:
            status = "ok" if b.passed else "FAIL"
            lines.append(f"  {b.name:<12} {str(b.shape):<14} {_number(b.difference):<12} {status}")
    worst = report.worst(3)
    if worst:
        lines.append("  worst components:")
        for c in worst:
            lines.append(
                f"    {c.name:<16} grad {_number(c.grad):>10}  approx {_number(c.approx):>10}  "
                f"|diff| {_number(c.abs_error)}"
            )
    for note in report.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
