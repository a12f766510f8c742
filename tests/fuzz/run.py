"""Run the fuzz suite: generate cases per op (hypothesis, fixed seed), run each on the C++, Triton
and reference paths in a pool of worker processes, judge, and report a per-op table.

    python -m tests.fuzz --cases-per-op 200 --seed 1 [--ops pam_mul,intops_softmax] [--workers 2]
                         [--timeout 20] [--out fuzz-report.md]
    python -m tests.fuzz --repro '<case JSON from a report>'

Exit status 1 when any call crashed, hung, returned a wrong result, raised an unclear error or
accepted invalid input, other than the known issues of ``known.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from collections import defaultdict

from . import known as known_mod
from .compare import ORACLE_OPS, PATHS, judge
from .spec import build_call, dumps, fmt_call, loads


def summarize_outputs(out, limit: int = 12) -> str:
    import torch

    parts = []
    for o in out:
        if isinstance(o, torch.Tensor):
            vals = o.reshape(-1)[:limit].tolist()
            more = " ..." if o.numel() > limit else ""
            parts.append(f"{str(o.dtype).replace('torch.', '')}{list(o.shape)} {vals}{more}")
        else:
            parts.append(repr(o))
    return "; ".join(parts)

FAIL = ("crash", "hang", "wrong", "unclear", "unchecked")
COLUMNS = ("cases", "calls", "crash", "hang", "wrong", "unclear", "unchecked", "known")
INPUT_OPS = {"pam_bmm", "pam.matmul", "pam_bmm_exact_grad", "fewbit_encode", "fewbit_forward", "fewbit_backward",
             "fewbit.fn", "gaunt_grid_product"}


def all_ops() -> list:
    from .cases import STRATEGIES

    return list(STRATEGIES)


def allocate(weights: dict, n: int, seed: int) -> dict:
    """Split ``n`` cases over the modes: by weight, every mode at least once when n allows; a small
    budget gives half to "valid" and the rest to modes taken in turn from a seed-dependent start."""
    modes = [m for m, w in weights.items() if w > 0]
    others = [m for m in modes if m != "valid"]
    if n < len(modes) + weights.get("valid", 0):
        counts = dict.fromkeys(modes, 0)
        counts["valid"] = (n + 1) // 2
        start = seed % max(len(others), 1)
        for i in range(n - counts["valid"]):
            counts[others[(start + i) % len(others)]] += 1
        return counts
    total = sum(weights[m] for m in modes)
    counts = {m: max(1, int(n * weights[m] / total)) for m in modes}
    counts["valid"] += n - sum(counts.values())
    return counts


def generate(op: str, n: int, seed: int) -> list:
    """``n`` cases of ``op`` drawn by hypothesis from its strategies (deterministic in ``seed``)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from .cases import STRATEGIES

    factory, weights = STRATEGIES[op]
    cases = []
    for mode, count in allocate(weights, n, seed).items():
        if count <= 0:
            continue
        got = []

        @hseed(seed * 1000003 + zlib.crc32(f"{op}/{mode}".encode()))
        @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(factory(mode))
        def collect(c):
            got.append(c)

        collect()
        cases += got[:count]
    return cases


class Report:
    def __init__(self):
        self.rows = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
        self.failures = []  # (op, path, category, case, detail, known id or None)
        self.results = []  # (case, {path: raw result}, verdict) with keep_results
        self.seconds = 0.0
        self.restarts = 0

    def add(self, case: dict, verdict: dict, calls: int) -> None:
        row = self.rows[case["op"]]
        row["cases"] += 1
        row["calls"] += calls
        for path, (cat, detail) in verdict.items():
            if cat in FAIL:
                k = known_mod.match(case, path, cat, detail)
                if k is not None:
                    row["known"] += 1
                    self.failures.append((case["op"], path, cat, case, detail, k["id"]))
                else:
                    row[cat] += 1
                    self.failures.append((case["op"], path, cat, case, detail, None))

    def unknown_failures(self, op=None):
        return [f for f in self.failures if f[5] is None and (op is None or f[0] == op)]

    def known_failures(self, issue_id):
        return [f for f in self.failures if f[5] == issue_id]

    def ok(self) -> bool:
        return not self.unknown_failures()

    def table(self) -> str:
        head = "| op | " + " | ".join(COLUMNS) + " |"
        lines = [head, "|---|" + "---:|" * len(COLUMNS)]
        total = dict.fromkeys(COLUMNS, 0)
        for op, row in self.rows.items():
            lines.append(f"| {op} | " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
            for c in COLUMNS:
                total[c] += row[c]
        lines.append("| **total** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
        return "\n".join(lines)

    def failure_groups(self):
        """Failures grouped by (op, path, category, kind, known id): count and the first example."""
        groups = {}
        for f in self.failures:
            key = (f[0], f[1], f[2], f[3]["kind"], f[5])
            if key in groups:
                groups[key][0] += 1
            else:
                groups[key] = [1, f]
        return groups

    def markdown(self, title: str = "pyops fuzz report") -> str:
        out = [f"# {title}", "", self.table(), "",
               f"{sum(r['cases'] for r in self.rows.values())} cases, "
               f"{sum(r['calls'] for r in self.rows.values())} calls in {self.seconds:.0f} s; "
               f"{self.restarts} worker restarts.", ""]
        groups = self.failure_groups()
        for title_, want_known in (("Failures", False), ("Known issues (xfail)", True)):
            sel = [(k, v) for k, v in groups.items() if (k[4] is not None) == want_known]
            out.append(f"## {title_} ({sum(v[0] for _, v in sel)})")
            out.append("")
            for (op, path, cat, kind, kid), (count, f) in sel:
                case, detail = f[3], f[4]
                out.append(f"- **{op}** [{path}] {cat}, kind `{kind}`" + (f", known issue `{kid}`" if kid else "")
                           + f" ({count} case{'s' if count > 1 else ''})")
                out.append(f"  - call: `{fmt_call(case)[:1500]}`")
                out.append(f"  - what: {_oneline(detail)[:1500]}")
                out.append(f"  - repro: `python -m tests.fuzz --repro '{dumps(case)}'`"
                           if len(dumps(case)) < 6000 else "  - repro: (case too large to print)")
            out.append("")
        ids = {k["id"]: k["reason"] for k in known_mod.KNOWN}
        hit = {f[5] for f in self.failures if f[5]}
        out.append("## Known issues registered in tests/fuzz/known.py")
        out.append("")
        for kid, reason in ids.items():
            out.append(f"- `{kid}`{'' if kid in hit else ' (no failing case this run)'}: {reason}")
        out.append("")
        return "\n".join(out)


def _oneline(text: str) -> str:
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return lines[0] + " | log tail: " + " / ".join(ln.strip() for ln in lines[-8:])


def _inputs(case):
    """(args, kwargs[, the fewbit public case's grad]) rebuilt for comparisons that need them."""
    args, kwargs = build_call(case)
    if case["op"] == "fewbit.fn":
        from .spec import build

        return args, kwargs, build(case["grad"])
    return args, kwargs


def run_fuzz(ops=None, cases_per_op: int = 10, seed: int = 0, workers: int = 1, timeout: float = 20.0,
             explicit: bool = True, progress=None, cases=None, keep_results: bool = False) -> Report:
    from .pool import Pool

    ops = list(ops or all_ops())
    t0 = time.monotonic()
    if cases is None:
        cases = []
        if explicit:
            cases += [c for c in known_mod.explicit_cases() if c["op"] in ops]
        for op in ops:
            cases += generate(op, cases_per_op, seed)
    jobs = []
    for i, c in enumerate(cases):
        paths = list(PATHS) + (["oracle"] if c["op"] in ORACLE_OPS and c["expect"] != "invalid" else [])
        jobs += [(i, c, p) for p in paths]
    expected = defaultdict(int)
    for i, _, _ in jobs:
        expected[i] += 1
    results = defaultdict(dict)
    report = Report()
    done = [0]

    def on_result(job, result):
        i, case, path = job
        results[i][path] = result
        if len(results[i]) == expected[i]:
            inputs = _inputs(case) if case["op"] in INPUT_OPS and case["expect"] != "invalid" else None
            try:
                verdict = judge(case, results[i], inputs)
            except Exception as e:  # a comparison that cannot run is a wrong result, with the reason
                verdict = {p: ("wrong", f"comparison failed: {type(e).__name__}: {e}") for p in PATHS}
            report.add(case, verdict, calls=sum(1 for p in results[i] if p != "oracle"))
            if keep_results:
                report.results.append((case, results[i], verdict))
            del results[i]
            done[0] += 1
            if progress and done[0] % 50 == 0:
                progress(f"{done[0]}/{len(cases)} cases, {time.monotonic() - t0:.0f} s")

    with Pool(workers, timeout) as pool:
        pool.run(jobs, on_result)
        report.restarts = pool.restarts
    report.seconds = time.monotonic() - t0
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases-per-op", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("PYOPS_FUZZ_WORKERS", "1")))
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per call before it counts as a hang")
    ap.add_argument("--no-explicit", action="store_true", help="skip the explicit regression / empty cases")
    ap.add_argument("--out", default="", help="write the report as markdown to this path")
    ap.add_argument("--repro", default="", help="run one case (JSON, as printed in a report) on every path")
    ap.add_argument("--list", action="store_true", help="list the ops and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(all_ops()))
        return 0
    if args.repro:
        case = loads(args.repro)
        rep = run_fuzz(cases=[case], workers=1, timeout=args.timeout, keep_results=True)
        print(fmt_call(case))
        for _, raw, verdict in rep.results:
            for path in list(PATHS) + ["oracle"]:
                if path not in raw:
                    continue
                r = raw[path]
                what = summarize_outputs(r[1]) if r[0] == "ok" else " ".join(str(v) for v in r[1:])[:2000]
                cat = verdict.get(path, ("", ""))
                print(f"[{path}] {r[0]}: {what}" + (f"\n    verdict: {cat[0]} {_oneline(cat[1])[:1000]}"
                                                    if path in verdict else ""))
        return 0 if rep.ok() else 1
    ops = [o for o in args.ops.split(",") if o] or None
    if ops:
        unknown = set(ops) - set(all_ops())
        if unknown:
            ap.error(f"unknown ops {sorted(unknown)}; --list shows them")
    rep = run_fuzz(ops, args.cases_per_op, args.seed, args.workers, args.timeout, not args.no_explicit,
                   progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(rep.table())
    n_cases = sum(r["cases"] for r in rep.rows.values())
    print(f"\n{n_cases} cases in {rep.seconds:.0f} s, {rep.restarts} worker restarts")
    groups = rep.failure_groups()
    for (op, path, cat, kind, kid), (count, f) in groups.items():
        tag = f" [known: {kid}]" if kid else ""
        print(f"- {op} [{path}] {cat} {kind}{tag} x{count}: {fmt_call(f[3])[:300]}\n    {_oneline(f[4])[:400]}")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(rep.markdown())
        print(f"report written to {args.out}")
    return 0 if rep.ok() else 1
