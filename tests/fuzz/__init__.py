"""Hostile-input property tests for every pyops op, each call in a worker process.

    python -m tests.fuzz --cases-per-op 200 --seed 1 --out fuzz-report.md   # table + report
    python -m tests.fuzz --ops intops_softmax,pam.matmul --cases-per-op 50  # some ops
    python -m tests.fuzz --repro '<case JSON printed in a report>'          # one case, every path
    pytest tests/fuzz                                                      # the CI budget

Every raw op ``torch.ops.pyops.*`` and the main public functions run on three paths: the C++
kernel (CPU tensors), the family's Triton launcher in the interpreter (TRITON_INTERPRET=1 set in
the worker before triton is imported) and ``pyops.reference``; public functions run with their
module's raw-op handles pointed at each path.  Properties: valid input gives the reference's
result (bit-exact where the README promises it, else the tolerance documented in compare.py);
invalid input raises a Python exception naming the op and the argument; nothing crashes, hangs
or silently disagrees.  A crash or hang only ends a worker, which the pool records with the
reproducing call and restarts.

Layout: spec.py (cases as JSON data, built into tensors), values.py (hypothesis strategies for
shapes, layouts, hostile values), cases.py (per-op valid domain and bad-input modes), targets.py
(what a worker calls per path, the float64 oracles), worker.py / pool.py (the processes),
compare.py (properties and tolerances), known.py (regression cases, known open issues),
run.py (CLI and report), test_fuzz.py (pytest entry).
"""
