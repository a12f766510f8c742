"""The op pattern itself: backend choice, the reference fallback, `python -m pyops`."""

import subprocess
import sys

from helpers import HAS_CPP, run_without_cpp

from pyops import _library


def test_every_op_has_a_backend_per_device():
    assert _library.BACKENDS
    for name, chosen in _library.BACKENDS.items():
        if chosen["cpu"] == "composite":  # built from other pyops ops, on every device
            assert chosen["cuda"] == "composite", name
            continue
        assert chosen["cpu"] == ("cpp" if HAS_CPP else "reference"), name
        assert chosen["cuda"] in {"cuda", "triton", "reference"}, name


def test_fallback_warns_once_and_uses_references():
    stderr = run_without_cpp(
        """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import pyops
        from pyops import _library
        msgs = [str(x.message) for x in w if "compiled kernels unavailable" in str(x.message)]
        assert len(msgs) == 1, msgs
        assert all(c["cpu"] in ("reference", "composite") for c in _library.BACKENDS.values())
        """
    )
    assert "Traceback" not in stderr


def test_python_m_pyops_reports_backends():
    out = subprocess.run([sys.executable, "-m", "pyops"], capture_output=True, text=True, check=True).stdout
    assert "C++ CPU kernels" in out and "Triton kernels" in out and "pam_mul" in out
