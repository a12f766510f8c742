"""scripts/triton_aot.py (`make triton-aot`): the recorder, the checks and the table, on toy and tiny cases.

The full ahead-of-time compile is its own make target; here one child process (Triton compiling for
real, never the interpreter this test session runs in) records a few launches and compiles toy
kernels for sm_80.  Skips where Triton cannot compile for a GPU target.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "triton_aot.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("triton_aot_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # imports no triton at module level
    return module


aot = _load_script()


# ------------------------------------------------------------------ pure logic (no compiler)
def _fake_launch(signature, constexprs=None, attrs=None, options=None, name="_toy_kernel"):
    fn = types.SimpleNamespace(module="pyops.kernels.toy", __name__=name, arg_names=list(signature),
                               cache_key="0" * 64)
    return aot.Launch(fn, dict(signature), constexprs or {}, attrs or {}, options or {}, "toy case")


def test_parse_ptxas_log_both_ptxas_flavours():
    log = textwrap.dedent("""\
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function '_k' for 'sm_80'
        ptxas info    : Function properties for _k
            360 bytes stack frame, 324 bytes spill stores, 608 bytes spill loads
        ptxas info    : Used 255 registers, used 1 barriers, 360 bytes cumulative stack size, 408 bytes cmem[0]
        ptxas-blackwell info    : Function properties for _k
            0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas-blackwell info    : Used 40 registers, used 0 barriers
        """)
    assert aot.parse_ptxas(log) == {"regs": 255, "stack": 360, "spill_stores": 324, "spill_loads": 608}
    with pytest.raises(ValueError):
        aot.parse_ptxas("ptxas info    : 0 bytes gmem\n")


def test_problems_flag_spills_shared_memory_per_target_and_errors():
    launch = _fake_launch({"x_ptr": "*fp32", "n": "constexpr", "BLOCK": "constexpr"},
                          {(1,): 1, (2,): 1024}, {(0,): [["tt.divisibility", 16]], (1,): [], (2,): []})
    assert "n=1" in launch.describe() and "BLOCK=1024" in launch.describe()
    clean = aot.Result(regs=40, shared=4096)
    assert aot.problems(launch, "sm_80", clean) == [] and aot.problems(launch, "sm_90", clean) == []
    spill = aot.Result(regs=255, spill_stores=8, spill_loads=4)
    (msg,) = aot.problems(launch, "sm_90", spill)
    assert "spills 8 B stores / 4 B loads" in msg and "_toy_kernel" in msg and "toy case" in msg
    # 200 KiB: above sm_80's 163 KiB per block, within sm_90's 227 KiB
    big = aot.Result(regs=64, shared=200 * 1024)
    assert aot.problems(launch, "sm_90", big) == []
    (msg,) = aot.problems(launch, "sm_80", big)
    assert "shared memory" in msg and "163 KiB" in msg
    assert aot.problems(launch, "sm_90", aot.Result(shared=227 * 1024)) == []  # the limit itself is fine
    err = aot.Result(error="CompilationError: 'int' object has no attribute 'to'")
    (msg,) = aot.problems(launch, "sm_80", err)
    assert "compile error" in msg and "has no attribute 'to'" in msg


def test_distinct_keys_on_configuration_not_case():
    pytest.importorskip("triton")
    a = _fake_launch({"x_ptr": "*fp32", "n": "i32"}, attrs={(0,): [["tt.divisibility", 16]], (1,): []})
    b = _fake_launch({"x_ptr": "*fp32", "n": "i32"}, attrs={(0,): [["tt.divisibility", 16]], (1,): []})
    b.case = "another case"
    c = _fake_launch({"x_ptr": "*fp32", "n": "i32"}, attrs={(0,): [["tt.divisibility", 16]],
                                                            (1,): [["tt.divisibility", 16]]})
    assert a.key() == b.key() != c.key()
    assert aot.distinct([a, b, c]) == [a, c]
    assert "div16:n" in c.describe()


def test_markdown_table_rows_and_verdicts():
    pytest.importorskip("triton")
    launch = _fake_launch({"x_ptr": "*i8", "n": "i32", "BLOCK": "constexpr"}, {(2,): 64})
    rows = [(launch, "sm_80", aot.Result(regs=32, shared=16)),
            (launch, "sm_90", aot.Result(regs=255, spill_stores=4, spill_loads=4, shared=16)),
            (launch, "sm_80", aot.Result(error="boom"))]
    table = aot.markdown(rows)
    lines = [ln for ln in table.splitlines() if ln.startswith("| toy._toy_kernel")]
    assert len(lines) == 3
    assert lines[0].endswith("| ok |") and "| 32 | 0/0 |" in lines[0]
    assert lines[1].endswith("| **FAIL** |") and "| 4/4 |" in lines[1]
    assert lines[2].endswith("| **error** |")
    assert "- compile errors: 1" in table and "1 spilling" in table


# ------------------------------------------------------------------ real recording and compiling
_CHILD = r'''
import json, sys, time, importlib.util
sys.path.insert(0, SCRIPT_DIR)
import triton_aot as aot
out = {}
try:
    aot._setup_triton()
    import triton, triton.language as tl
    # can this Triton compile for a GPU target here (bundled ptxas, no GPU)?
    spec = importlib.util.spec_from_file_location("aot_toys", TOYS)
    toys = importlib.util.module_from_spec(spec); spec.loader.exec_module(toys)
    import torch
    rec = aot.Recorder()
    rec.record("probe", lambda: toys.copy(torch.zeros(64)))
    probe = aot.compile_launch(rec.launches[-1], "sm_80")
    out["probe"] = probe.error
except Exception as e:  # noqa: BLE001
    out["probe"] = f"{type(e).__name__}: {e}"
if out["probe"] is None:
    t0 = time.time()
    families = aot.load_families(["intops", "pam"])
    k = families["intops"]
    from pyops.reference import intops as ref
    launches = {}
    def rec_case(name, call):
        r = aot.Recorder(); r.record(name, call)
        launches[name] = [{"kernel": lc.kernel, "signature": lc.signature, "options": lc.options,
                           "constexprs": {lc.fn.arg_names[p[0]]: getattr(v, "value", v) for p, v in lc.constexprs.items()},
                           "div16": sorted(lc.fn.arg_names[p[0]] for p, a in lc.attrs.items() if a)}
                          for lc in r.launches]
        return r.launches
    x = torch.randint(-9, 9, (3, 1), dtype=torch.int8)
    rec_case("softmax column", lambda: k.softmax(x, *ref.ibert_exp_constants(1.5), 8, "ibert"))
    long = torch.randint(-9, 9, (2, k.MAX_BLOCK + 1), dtype=torch.int16)
    rec_case("softmax long", lambda: k.softmax(long, ref.shift_x0(0.1), 0, 0, 8, "shiftmax"))
    a, b = torch.randn(2, 32, 16), torch.randn(2, 16, 48)
    rec_case("bmm", lambda: families["pam"].bmm(a, b))
    out["launches"] = launches
    out["max_block"] = k.MAX_BLOCK
    # toys: a compile error (n.to on an int specialised to a constexpr) and a forced spill
    results = {}
    for name, call in [("to_on_one", lambda: toys.widen(torch.zeros(4, dtype=torch.int64), 1)),
                       ("to_on_two", lambda: toys.widen(torch.zeros(4, dtype=torch.int64), 2)),
                       ("spill", lambda: toys.squeeze(torch.zeros(4096)))]:
        r = aot.Recorder(); r.record(name, call)
        lc = r.launches[-1]
        res, hit = aot.cached_compile(lc, "sm_80", CACHE)
        res2, hit2 = aot.cached_compile(lc, "sm_80", CACHE)
        results[name] = {"result": res.__dict__, "hit": hit, "hit2": hit2, "same": res2.__dict__ == res.__dict__,
                         "problems": aot.problems(lc, "sm_80", res)}
    out["toys"] = results
    out["main_rc"] = aot.main(["--only", "intops.isqrt one element", "--targets", "sm_80", "--cache-dir", CACHE])
    out["seconds"] = time.time() - t0
print("RESULT " + json.dumps(out, default=str))
'''

_TOYS = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _copy_kernel(x_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(o_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


def copy(x):
    out = x.clone()
    _copy_kernel[(triton.cdiv(x.numel(), 64),)](x, out, x.numel(), BLOCK=64)
    return out


@triton.jit
def _widen_kernel(o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(o_ptr + offs, offs + n.to(tl.int64))


def widen(out, n):
    _widen_kernel[(1,)](out, n, BLOCK=4)


@triton.jit
def _squeeze_kernel(x_ptr, o_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    y = tl.exp(tl.load(x_ptr + offs))
    tl.store(o_ptr + offs, y / tl.sum(y, axis=0))


def squeeze(x):
    out = torch.empty_like(x)
    _squeeze_kernel[(1,)](x, out, BLOCK=x.numel(), maxnreg=24)  # 32 values live per thread, 24 registers
    return out
'''


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    pytest.importorskip("triton")
    tmp = tmp_path_factory.mktemp("aot")
    toys = tmp / "aot_toys.py"
    toys.write_text(_TOYS)
    code = (f"SCRIPT_DIR = {str(SCRIPT.parent)!r}\nTOYS = {str(toys)!r}\nCACHE = {str(tmp / 'cache')!r}\n"
            + _CHILD)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp / "triton-cache")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"child failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1][len("RESULT "):])
    if out["probe"] is not None:
        pytest.skip(f"triton cannot compile for sm_80 here: {out['probe'][:300]}")
    return out


def test_recorder_sees_ints_equal_to_one_as_constexprs(child):
    (launch,) = child["launches"]["softmax column"]
    assert launch["kernel"] == "intops._softmax_kernel"
    # a row of one element and I-BERT constants b = c = 1 (scale 1.5): Triton specialises them
    assert launch["constexprs"] == {"n": 1, "b": 1, "c": 1, "IBERT": True, "BLOCK": 1, "ONE_PASS": True}
    assert launch["signature"]["x_ptr"] == "*i8" and launch["signature"]["o_ptr"] == "*i32"
    assert launch["signature"]["x0"] == "i32"


def test_recorder_sees_the_launchers_block_choice_and_hints(child):
    (launch,) = child["launches"]["softmax long"]
    assert launch["constexprs"]["BLOCK"] == child["max_block"] and launch["constexprs"]["ONE_PASS"] is False
    assert launch["signature"]["x_ptr"] == "*i16" and launch["signature"]["n"] == "i32"
    assert "n" not in launch["div16"]  # 1025
    (bmm,) = child["launches"]["bmm"]
    assert bmm["kernel"] == "pam._bmm_kernel"
    assert {k: bmm["constexprs"][k] for k in ("BM", "BN", "BK")} == {"BM": 32, "BN": 32, "BK": 8}
    assert bmm["constexprs"]["sak"] == 1 and bmm["constexprs"]["scn"] == 1  # unit strides
    assert {"M", "N", "K"} <= set(bmm["div16"])  # 32, 48, 16


def test_compile_error_is_reported_and_cached(child):
    bad = child["toys"]["to_on_one"]
    assert "has no attribute 'to'" in bad["result"]["error"]
    assert bad["problems"] and "compile error" in bad["problems"][0]
    assert bad["hit"] is False and bad["hit2"] is True and bad["same"]
    good = child["toys"]["to_on_two"]  # the same kernel with n = 2 compiles
    assert good["result"]["error"] is None and good["problems"] == []


def test_spilling_kernel_fails_the_check(child):
    spill = child["toys"]["spill"]
    res = spill["result"]
    assert res["error"] is None and res["regs"] <= 24
    assert res["spill_stores"] > 0 and res["spill_loads"] > 0
    assert spill["problems"] and "spills" in spill["problems"][0]


def test_main_compiles_a_selection_and_passes(child):
    assert child["main_rc"] == 0
