"""Turn a CUDA source into C++ that the CUDA-on-CPU runtime (include/, runtime.cpp) runs.

Two rewrites, both keeping every line where it was (a ``#line`` directive names the
original file), so compiler and sanitizer reports point at csrc/cuda/*.cu:

* ``kernel<T><<<grid, block, shared, stream>>>(args)`` becomes
  ``::pyops_emu::launch((const void*)&kernel<T>, [=] { kernel<T>(args); }, grid, block, shared, stream)``;
  brackets are matched, so casts in the configuration and arguments spanning
  lines are handled (a regex is not enough for either);
* ``extern __shared__ T name[];`` becomes a pointer to the launch's dynamic shared memory.
"""

import re
import sys
from pathlib import Path

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}


def _skip_string(src: str, i: int) -> int:
    q = src[i]
    i += 1
    while src[i] != q:
        i += 2 if src[i] == "\\" else 1
    return i + 1


def _match(src: str, i: int) -> int:
    """Index just past the bracket that closes the one at src[i]."""
    depth = []
    while True:
        c = src[i]
        if c in "\"'":
            i = _skip_string(src, i)
            continue
        if c in _OPEN:
            depth.append(_OPEN[c])
        elif c in _CLOSE:
            if depth.pop() != c:
                raise ValueError(f"unbalanced {c!r} at offset {i}")
            if not depth:
                return i + 1
        i += 1


def _callee_start(src: str, end: int) -> int:
    """Start of the kernel expression (``name``, ``ns::name`` or ``name<...>``) ending at ``end``."""
    i = end
    while True:
        if src[i - 1] == ">":  # template arguments: walk back to the matching '<'
            depth = 0
            while True:
                i -= 1
                if src[i] == ">":
                    depth += 1
                elif src[i] == "<":
                    depth -= 1
                    if depth == 0:
                        break
        j = i
        while j > 0 and (src[j - 1].isalnum() or src[j - 1] == "_"):
            j -= 1
        if j == i:
            raise ValueError(f"no kernel name before <<< at offset {end}")
        i = j
        if src[i - 2 : i] == "::":
            i -= 2
            continue
        return i


def _launch_end(src: str, i: int) -> int:
    """Index of the '>>>' closing the configuration that starts at ``i``."""
    depth = 0
    while True:
        c = src[i]
        if c in "\"'":
            i = _skip_string(src, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and src.startswith(">>>", i):
            return i
        i += 1


def translate(src: str, path: str) -> str:
    out = [f'#line 1 "{path}"\n']
    pos = 0
    while True:
        k = src.find("<<<", pos)
        if k < 0:
            break
        start = _callee_start(src, k)
        kernel = src[start:k]
        cfg_end = _launch_end(src, k + 3)
        config = src[k + 3 : cfg_end]
        lp = cfg_end + 3
        while src[lp].isspace():
            lp += 1
        if src[lp] != "(":
            raise ValueError(f"{path}: no argument list after the launch of {kernel}")
        rp = _match(src, lp)
        args = src[lp + 1 : rp - 1]
        out.append(src[pos:start])
        # the configuration's and the arguments' own text (and newlines) are kept
        out.append(f"::pyops_emu::launch((const void*)&{kernel}, [=] {{ {kernel}({args}); }}, {config})")
        pos = rp
    out.append(src[pos:])
    text = "".join(out)
    return re.sub(
        r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([^;\[]*?)\s*\b(\w+)\s*\[\s*\]\s*;",
        lambda m: f"{m.group(1)}* {m.group(2)} = ({m.group(1)}*)::pyops_emu::dynamic_shared();",
        text,
    )


def main(argv):
    src, dst = Path(argv[1]), Path(argv[2])
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(translate(src.read_text(), str(src.resolve())))


if __name__ == "__main__":
    main(sys.argv)
