"""``scripts/bench_report.py`` renders a saved run: a smoke test so the report script never rots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_report.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("fastgrad_bench_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(case, n_params, contender, kind, seconds, timed=None, **extra):
    timed = timed or n_params
    return {
        "case": case, "n_params": n_params, "contender": contender, "kind": kind, "seconds_timed": seconds,
        "seconds_check": seconds * (n_params / timed if kind == "extrapolated" else 1.0),
        "components_timed": timed, "components_per_s": timed / seconds, **extra,
    }


def saved_run() -> dict:
    rows = [
        _row("M", 1000, "naive", "extrapolated", 0.5, timed=10),
        _row("M", 1000, "naive (BLAS 1 thread)", "extrapolated", 0.2, timed=10),
        _row("M", 1000, "dense", "full", 0.1, model_gflop=1.0, model_gflops_per_s=10.0,
             numpy_matmul_gflops_per_s=50.0, fraction_of_matmul_rate=0.2, kinks=3),
        _row("M", 1000, "dense-sampled (3/block)", "sampled", 0.01, timed=18),
        _row("M", 1000, "dense-directional", "directional", 0.01, directions=8, passed=False, difference=1e-4),
        _row("quadratic", 300, "python-loop", "extrapolated", 0.1, timed=100),
        _row("quadratic", 300, "generic", "full", 0.1),
        _row("M", 1000, "dense (1 thread)", "full", 0.2, threads=1),
        _row("M", 1000, "dense (2 threads)", "full", 0.1, threads=2, speedup_1_to_2_threads=2.0,
             interleaved_median_1_thread=0.2, interleaved_median_2_threads=0.1, interleaved_min_1_thread=0.19,
             interleaved_min_2_threads=0.1, interleaved_speedup_median=2.0, interleaved_speedup_min=1.9),
        {"case": "S", "n_params": 47, "contender": "dense: new process, empty cache", "kind": "compile",
         "process_wall_s": 20.0, "import_s": 0.5, "first_check_s": 18.0, "second_check_s": 0.001,
         "compiled_during_first_check": {"fastgrad": 9, "other": 20}},
        {"case": "L", "n_params": 5000, "contender": "dense", "kind": "memory", "components": 5000,
         "peak_bytes": 300 * 2**20, "maxrss_before_check_kib": 200 * 1024, "check_increase_bytes": 100 * 2**20,
         "theta_bytes": 40000, "activations_bytes": 8000},
        _row("smooth", 605, "dense, complex", "accuracy", 0.01, engine="dense", method="complex",
             relative_error=3e-16, max_abs_error=1e-17, max_noise_estimate=0.0),
    ]
    return {
        "datetime": "2026-01-01T00:00:00",
        "machine_info": {"fastgrad": {"cpu": "test CPU", "cores": 2, "numba": "0", "numpy": "0", "full_run": True,
                                      "blas": [{"user_api": "blas", "internal_api": "openblas", "num_threads": 2}]}},
        "benchmarks": [{"fullname": f"bench::{i}", "extra_info": row, "stats": {}} for i, row in enumerate(rows)],
    }


def test_report_script_renders_a_saved_run(tmp_path):
    pytest.importorskip("matplotlib")
    script = _load_script()
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(saved_run()))
    md, png = tmp_path / "benchmarks.md", tmp_path / "throughput.png"
    script.main(["--json", str(saved), "--md", str(md), "--png", str(png)])
    text = md.read_text()
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # Speed-ups against the faster naive row of the same run: 0.2 s * 100 / 0.1 s.
    assert "| M | 1,000 | dense | every component | 100.0 ms | 10.0 k | 200x |" in text
    assert "| M | 1,000 | naive (BLAS 1 thread) | extrapolated from 10 components | ~20.00 s | 50 | 1.00x |" in text
    assert "quick: 18 sampled components" in text and "verdict FAILED" in text
    assert "| dense | M | 1,000 | 200.0 ms / 190.0 ms | 100.0 ms / 100.0 ms | 2.00x | 1.90x |" in text
    assert "test CPU, 2 cores" in text
    assert "complex 3.0e-16" in text
    assert "torch.autograd.gradcheck** was not measured" in text
