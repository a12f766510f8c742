"""The benchmark harness runs and reports what it claims (columns, limits, roofline fractions), on tiny
sizes in a few seconds.  Nothing here asserts a timing: benchmarks are not tests."""

from __future__ import annotations

import csv
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root: benchmarks/

from benchmarks import harness  # noqa: E402 (after the path)
from pyops import _library  # noqa: E402
from benchmarks.baselines import wavehax_official  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(harness, "TIME_SCALE", 0.05)


def _tiny_cases():
    from benchmarks import bench_pam

    return [harness.Case("pam mul 64K", lambda: bench_pam._mul_case(2 ** 16, CPU)),
            harness.Case("pam matmul 64^3", lambda: bench_pam._matmul_case(64, torch.float32, CPU)),
            harness.Case("not timed", lambda: harness.Row("x", "saved", "1", "float32", 1.0, {"b": 2.0},
                                                          unit="MiB"), timed=False)]


def test_limits_are_measured_and_finite(fast):
    counts = sorted({1, harness.all_cores()})
    limits = harness.measure_limits(CPU, counts, stream_mib=16, matmul_n=256)
    for t in counts:
        for value in (limits.copy[t], limits.triad[t], limits.peak[t], limits.bandwidth(t),
                      limits.peak_gflops(t)):
            assert math.isfinite(value) and value > 0
    text = limits.describe()
    assert "copy" in text and "triad" in text and "GFLOP/s" in text and "ISA" in text
    assert limits.seconds < 20
    # the compute roof: an FMA peak for every ISA level the CPU has, at every count, each row's own
    widest = _library._C.cpu_isa_detected()
    levels = _library.CPU_ISAS[:_library.CPU_ISAS.index(widest) + 1]
    assert set(limits.fma) == {(i, t) for i in levels for t in counts}
    for (isa, t), value in limits.fma.items():
        assert math.isfinite(value) and value > 0 and limits.peak_gflops(t, isa) == value
        assert f"{isa} {value:.1f}" in text
    for t in counts:  # baselines ("" : their library's ISA) are held to the widest level's peak
        assert limits.peak_gflops(t) == limits.fma[(widest, t)]


def test_rows_report_roofline_and_scaling(fast, tmp_path):
    counts = sorted({1, harness.all_cores()})
    limits = harness.measure_limits(CPU, counts, stream_mib=16, matmul_n=256)
    rows = harness.run_cases(_tiny_cases(), CPU, limits, counts, echo=False, isa="scalar")
    timed = [r for r in rows if r.unit == "ms"]
    assert sorted({r.threads for r in timed}) == counts  # every timed row at 1 thread and at all cores
    assert {r.isa for r in timed} == {"scalar"} and {r.isa for r in rows if r.unit != "ms"} == {""}
    assert len(timed) == 2 * len(counts) and len(rows) == len(timed) + 1
    assert {r.bound for r in timed} == {"memory", "compute"}
    for r in timed:
        for who in [None, *r.baselines]:
            frac = r.roofline(limits, who)
            assert math.isfinite(frac) and 0 < frac <= harness.SANE_FRACTION, (r, who, frac)

    path = tmp_path / "rows.csv"
    harness.write_csv(rows, str(path), limits)
    with open(path) as f:
        lines = list(csv.DictReader(f))
    assert set(harness.CSV_COLUMNS) <= set(lines[0])
    for line in lines:
        if line["unit"] != "ms":
            assert line["ours_roofline"] == "" and line["threads"] == "0" and line["isa"] == ""
            continue
        assert line["isa"] == "scalar"
        assert line["bound"] in ("memory", "compute")
        for col in ("ours_roofline", "baseline_roofline"):
            assert 0 < float(line[col]) <= harness.SANE_FRACTION
        assert float(line["roof"]) > 0 and float(line["work"]) > 0
        if int(line["threads"]) > 1:  # speed-up from 1 thread, ours and the baseline's
            assert float(line["ours_speedup"]) > 0 and float(line["baseline_speedup"]) > 0
            assert line["scales_better"] in ("ours", "baseline", "same")

    table = harness.format_table(rows, limits)
    for column in ("isa", "threads", "ours % of roof", "baseline % of roof", "speed-up 1->", "scales better"):
        assert column in table.splitlines()[0]
    if harness._matplotlib() is not None:
        written = harness.write_family_plots(rows, str(tmp_path), "test", limits)
        assert [os.path.basename(p) for p in written] == ["test-pam.png"]


def test_wavehax_official_shim_skips_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.delenv(wavehax_official.ENV, raising=False)
    got, why = wavehax_official.load()
    assert got is None and wavehax_official.ENV in why
    got, why = wavehax_official.load(str(tmp_path / "nowhere"))
    assert got is None and "wavehax/generators/wavehax.py" in why


def test_wavehax_official_shim_imports_a_checkout(monkeypatch, tmp_path):
    """A stand-in checkout shaped like the official one: importing it needs einops, and the torchaudio /
    librosa imports get stand-ins that are gone from sys.modules afterwards."""
    deps, repo = tmp_path / "deps", tmp_path / "repo"
    (deps / "einops").mkdir(parents=True)
    (deps / "einops" / "__init__.py").write_text("def rearrange(x, *a, **k):\n    return x\n")
    (repo / "wavehax" / "generators").mkdir(parents=True)
    (repo / "wavehax" / "modules").mkdir(parents=True)
    (repo / "wavehax" / "__init__.py").write_text("")
    (repo / "wavehax" / "modules" / "__init__.py").write_text(
        "from torchaudio.functional import resample\nfrom librosa.filters import mel\n"
        "def generate_pcph(f0, hop_length, sample_rate):\n    return f0\n")
    (repo / "wavehax" / "generators" / "__init__.py").write_text("from wavehax.generators.wavehax import *\n")
    (repo / "wavehax" / "generators" / "wavehax.py").write_text(
        "from einops import rearrange\nimport wavehax.modules\n"
        "class WavehaxGenerator:\n    def __init__(self, **kw):\n        self.kw = kw\n")
    monkeypatch.syspath_prepend(str(deps))
    before = {k for k in sys.modules if k.split(".")[0] in ("torchaudio", "librosa")}
    try:
        got, why = wavehax_official.load(str(repo))
        assert got is not None, why
        assert got.generator(_target_="x", channels=4).kw == {"channels": 4}
        assert got.modules.generate_pcph(1, 2, 3) == 1
        assert {k for k in sys.modules if k.split(".")[0] in ("torchaudio", "librosa")} == before
        for name in got.stand_ins:
            assert name in ("torchaudio", "librosa")
        if "torchaudio" in got.stand_ins:
            with pytest.raises(RuntimeError, match="stand-in"):
                got.modules.resample()
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in ("wavehax", "einops")]:
            del sys.modules[k]


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="no resettable RSS high-water mark")
def test_fewbit_mlp_rss_row_measures_a_lower_peak():
    """The MLP block step's peak-RSS row (forked children): the 3-bit GELU keeps 3/32 of the 4 MiB
    GELU input, so its step's peak is lower (a memory figure, not a timing)."""
    from benchmarks import bench_fewbit

    (row,) = bench_fewbit._mlp_rss_case(1024, 256)
    assert row.unit == "MiB" and 0 < row.ours < row.baselines["native GELU"]


def test_isa_option_times_each_level_the_cpu_has(tmp_path, capsys):
    """--isa runs the timed cases once per instruction set (skipping levels the CPU lacks) and
    labels each row; the level in use is restored afterwards."""
    import pyops
    from benchmarks import __main__ as bench_main

    before = pyops.cpu_isa()
    if before == "reference":
        pytest.skip("no C++ kernels")
    rc = bench_main.main(["--quick", "--only", "none", "--threads", "1", "--isa", "scalar,avx512",
                          "--out", str(tmp_path)])
    assert rc == 0 and pyops.cpu_isa() == before
    if pyops._library._C.cpu_isa_detected() != "avx512":
        assert "skipping --isa avx512" in capsys.readouterr().err
