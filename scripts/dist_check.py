"""`make dist-check`: build the sdist and check that it holds every file the build compiles or
includes (the C++/CUDA sources, every header they #include "...", transitively) and every
Python file and data file of the package. Exit 1 naming what is missing."""

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def needed() -> set:
    """Sources setup.py compiles (CUDA ones too: a CUDA build of the sdist needs them) and their
    quoted includes, resolved as the compiler does (next to the file, then csrc/include)."""
    todo = [*ROOT.glob("csrc/cpu/*.cpp"), *ROOT.glob("csrc/cuda/*.cu"), *ROOT.glob("csrc/cuda/*.cpp")]
    seen = set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for inc in INCLUDE.findall(f.read_text()):
            for base in (f.parent, ROOT / "csrc" / "include"):
                if (base / inc).exists():
                    todo.append((base / inc).resolve())
                    break
            else:
                sys.exit(f"dist-check: {f.relative_to(ROOT)} includes {inc!r}, which is not in the tree")
    files = {p.relative_to(ROOT).as_posix() for p in seen}
    files |= {p.relative_to(ROOT).as_posix() for pat in ("pyops/**/*.py", "pyops/data/*.json", "kernels/*.py")
              for p in ROOT.glob(pat)}
    return files | {"setup.py", "pyproject.toml", "README.md"}


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        # from a copy of the checkout's files: a stale *.egg-info/SOURCES.txt in the tree would
        # otherwise add files that MANIFEST.in misses
        tree = Path(out) / "tree"
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.split()
        for name in listed:
            if (ROOT / name).is_file():
                (tree / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, tree / name)
        subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", out], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (sdist,) = Path(out).glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    want = needed()
    missing = sorted(want - names)
    if missing:
        print(f"dist-check: {sdist.name} lacks {len(missing)} file(s) the build needs:", *missing, sep="\n  ")
        return 1
    print(f"dist-check: {sdist.name} holds all {len(want)} files the build compiles, includes or installs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
