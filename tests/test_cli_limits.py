"""The command refuses what cannot run, and reads negative numbers (issue 11, item 4).

In-process calls of ``fastgrad.cli.main``: every case is refused before any
kernel runs, so nothing here compiles.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from fastgrad import _memory, cli


def run_main(capsys, *argv):
    status = cli.main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return status, err


@pytest.mark.parametrize(
    "argv",
    [
        ("--layers", "100000,100000,10"),
        ("--layers", "4,5,3,1", "--batch", "1000000000"),
    ],
)
def test_a_check_that_cannot_fit_is_refused_with_exit_2_and_one_line(capsys, argv):
    # Fails before the fix: a NumPy MemoryError traceback and exit 1 ("failed").
    status, err = run_main(capsys, "check", *argv)
    assert status == cli.EXIT_USAGE
    assert len(err) == 1
    assert "not enough memory" in err[0] and "needs at least" in err[0] and "is available" in err[0]


def test_any_memory_error_is_exit_2(capsys, monkeypatch):
    from fastgrad.dense import DenseNet

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")

    monkeypatch.setattr(DenseNet, "gradcheck", no_memory)
    status, err = run_main(capsys, "check", "--layers", "4,5,3,1")
    assert status == cli.EXIT_USAGE
    assert len(err) == 1 and "not enough memory: Unable to allocate" in err[0]


def _npz_declaring(path, shapes: dict[str, tuple[int, ...]], stored_bytes: int = 64) -> None:
    """A .npz whose arrays declare ``shapes`` but hold only ``stored_bytes`` of data."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, shape in shapes.items():
            buffer = io.BytesIO()
            np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
            archive.writestr(f"{name}.npy", buffer.getvalue() + bytes(stored_bytes))


def test_an_npz_declaring_a_huge_shape_is_refused_from_its_header(capsys, tmp_path):
    path = tmp_path / "huge.npz"
    _npz_declaring(path, {"X": (4, 10**12), "Y": (1, 10**12)})
    status, err = run_main(capsys, "check", "--layers", "4,5,3,1", "--data", str(path))
    assert status == cli.EXIT_USAGE
    assert len(err) == 1 and "declares shape (4, 1000000000000)" in err[0] and "truncated" in err[0]


def test_an_npz_larger_than_memory_is_refused_before_loading(capsys, tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.zeros((4, 1000)), Y=np.zeros((1, 1000)))
    monkeypatch.setattr(_memory, "available_memory", lambda: 10_000)
    status, err = run_main(capsys, "check", "--layers", "4,5,3,1", "--data", str(path))
    assert status == cli.EXIT_USAGE
    assert len(err) == 1 and "not enough memory: loading --data" in err[0] and "40.0 kB" in err[0]


@pytest.mark.parametrize("layers", ["4,,5,1", "4,5,1,", ",4,5,1"])
def test_empty_layer_sizes_are_refused(capsys, layers):
    # Fails before the fix: "4,,5,1" was read as 4,5,1.
    status, err = run_main(capsys, "check", "--layers", layers)
    assert status == cli.EXIT_USAGE
    assert len(err) == 1 and "empty size" in err[0]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--eps", "-1e-7", "eps must be positive"),
        ("--eps", "-0.001", "eps must be positive"),
        ("--threshold", "-1e-6", "threshold must be a non-negative"),
        ("--seed", "-1", "must be 0 or more"),
        ("--l2", "-1e-3", "l2 must be"),
        ("--batch", "-5", "must be at least 1"),
    ],
)
def test_negative_numbers_reach_the_options_own_check(capsys, option, value, message):
    # Fails before the fix for -1e-7 and -1e-6: "expected one argument".
    status, err = run_main(capsys, "check", "--layers", "4,5,3,1", option, value)
    assert status == cli.EXIT_USAGE
    assert len(err) == 1 and message in err[0], err


def test_attaching_negative_numbers_leaves_other_arguments_alone():
    argv = ["check", "--layers", "4,5,1", "--eps", "-1e-7", "--json", "--seed=3", "--", "-2"]
    assert cli._attach_negative_numbers(argv) == ["check", "--layers", "4,5,1", "--eps=-1e-7", "--json", "--seed=3", "--", "-2"]


def test_memory_helpers():
    assert _memory.available_memory() is None or _memory.available_memory() > 0
    assert _memory.format_bytes(1_500_000_000) == "1.5 GB"
    with pytest.raises(_memory.NotEnoughMemoryError, match="needs at least 2.0 kB, and 1.0 kB is available"):
        _memory.require_memory(2000, "it", available=1000)
    small = _memory.dense_check_bytes([4, 5, 3, 1], 16)
    assert 0 < small < 100_000
