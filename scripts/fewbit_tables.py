"""Regenerate pyops/data/fewbit_tables.json: every built-in function that needs a
computed table, weights uniform and normal, bits 1..8.

    python scripts/fewbit_tables.py
"""

import json
import os
import sys
import time

from pyops import fewbit
from pyops.fewbit_tables import compute


def main() -> None:
    out = {}
    t0 = time.time()
    for name, fn in fewbit.FUNCTIONS.items():
        exact = fewbit.EXACT.get(name)
        for weight in fewbit.WEIGHTS:
            for bits in range(1, 9):
                if exact and 2 ** bits >= len(exact[1]):
                    continue  # served exactly by fewbit.EXACT
                borders, levels = compute(fn, bits, weight)
                out.setdefault(name, {}).setdefault(weight, {})[str(bits)] = {
                    "borders": [float(f"{v:.7g}") for v in borders],
                    "levels": [float(f"{v:.7g}") for v in levels],
                }
        print(f"{name:<12} done ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    with open(fewbit.TABLE_FILE, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {fewbit.TABLE_FILE} ({os.path.getsize(fewbit.TABLE_FILE) // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
