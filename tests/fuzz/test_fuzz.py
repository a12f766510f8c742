"""The fuzz suite's CI budget: every op, a few hypothesis cases each (fixed seed) on the C++,
Triton (interpreter) and reference paths, each call in a worker process.

Fails on any crash, hang, wrong result, unclear error or accepted invalid input that is not a
known issue (tests/fuzz/known.py); each known issue is an xfail test of its own (XPASS once fixed).
The long run is ``python -m tests.fuzz --cases-per-op 1000`` (``make fuzz``).
Environment: PYOPS_FUZZ_CASES (default 10 per op), PYOPS_FUZZ_SEED, PYOPS_FUZZ_WORKERS (default 1).
"""

import os

import pytest

pytest.importorskip("hypothesis", reason="the fuzz suite draws its cases with hypothesis (an optional test dep)")

from .known import KNOWN  # noqa: E402
from .run import _oneline, all_ops, run_fuzz  # noqa: E402
from .spec import dumps, fmt_call  # noqa: E402

CASES_PER_OP = int(os.environ.get("PYOPS_FUZZ_CASES", "10"))
SEED = int(os.environ.get("PYOPS_FUZZ_SEED", "20240613"))
WORKERS = int(os.environ.get("PYOPS_FUZZ_WORKERS", "1"))


@pytest.fixture(scope="module")
def report():
    return run_fuzz(None, CASES_PER_OP, SEED, WORKERS, timeout=20.0)


def _describe(failures, limit=8):
    lines = []
    for op, path, cat, case, detail, _ in failures[:limit]:
        lines.append(f"{op} [{path}] {cat} ({case['kind']}): {fmt_call(case)[:400]}\n    {_oneline(detail)[:600]}\n"
                     f"    repro: python -m tests.fuzz --repro '{dumps(case)[:3000]}'")
    if len(failures) > limit:
        lines.append(f"... and {len(failures) - limit} more")
    return "\n".join(lines)


@pytest.mark.parametrize("op", all_ops())
def test_no_crash_hang_or_wrong_result(report, op):
    assert report.rows[op]["cases"] > 0
    failures = report.unknown_failures(op)
    assert not failures, "\n" + _describe(failures)


_ISSUES = {}
for _k in KNOWN:
    _ISSUES.setdefault(_k["id"], _k["reason"])


@pytest.mark.parametrize("issue", [pytest.param(i, id=i, marks=pytest.mark.xfail(reason=r, strict=False))
                                   for i, r in _ISSUES.items()])
def test_known_issue(report, issue):
    failures = report.known_failures(issue)
    assert not failures, "\n" + _describe(failures, 3)


def test_pool_records_crash_hang_and_result():
    """The harness itself: a SIGSEGV and a hang are recorded with the call, and the pool goes on."""
    from .pool import Pool

    def job(i, op):
        return (i, {"op": op, "call": op, "kind": "valid", "expect": "valid", "args": [], "kwargs": {}, "names": []},
                "cpp")

    results = {}
    with Pool(1, timeout=5.0) as pool:
        pool.run([job(0, "selftest.ok"), job(1, "selftest.crash"), job(2, "selftest.hang"), job(3, "selftest.ok")],
                 lambda j, r: results.__setitem__(j[0], r))
    assert results[0][0] == "ok" and results[3][0] == "ok"
    assert results[1][0] == "crash" and "SIGSEGV" in results[1][1], results[1]
    assert results[2][0] == "hang", results[2]
    assert pool.restarts == 2
