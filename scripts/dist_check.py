"""`make dist-check`: build the sdist and check that it holds every file the build compiles or
includes (the C++/CUDA sources, every header they #include "...", transitively), every Python file
and data file of the package, py.typed, LICENSE and CHANGELOG.md.  Then check what a wheel would
get without compiling anything: the package files setuptools' build_py copies (py.typed, the
tables, pyops.kernels) and the wheel's metadata (version from pyops/_version.py, the SPDX license
and its LICENSE file).  Exit 1 naming what is missing or wrong."""

import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
LICENSE = "Apache-2.0"


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
    return files | {"setup.py", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "pyops/py.typed"}


def installed() -> set:
    """What the wheel's pyops/ must hold (build_py's output): every module, the tables, py.typed,
    and kernels/*.py as pyops/kernels."""
    files = {p.relative_to(ROOT).as_posix() for pat in ("pyops/**/*.py", "pyops/data/*.json")
             for p in ROOT.glob(pat)}
    files |= {f"pyops/kernels/{p.name}" for p in ROOT.glob("kernels/*.py")}
    return files | {"pyops/py.typed"}


def version() -> str:
    text = (ROOT / "pyops" / "_version.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def metadata_problems(meta: str, where: str) -> list:
    msg = email.parser.Parser().parsestr(meta)
    want = {"Version": version(), "License-Expression": LICENSE}
    problems = [f"{where}: {k} is {msg.get(k)!r}, expected {v!r}" for k, v in want.items() if msg.get(k) != v]
    if "LICENSE" not in msg.get_all("License-File", []):
        problems.append(f"{where}: License-File does not name LICENSE (got {msg.get_all('License-File')})")
    return problems


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
        # one setup.py run (it imports torch): the sdist, and the pure-Python part of a wheel build
        lib = Path(out) / "lib"
        subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", out, "build_py", "-d", str(lib)],
                       cwd=tree, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (sdist,) = Path(out).glob("*.tar.gz")
        with tarfile.open(sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
            (pkg_info,) = [m for m in tar.getmembers()
                           if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")]
            sdist_meta = tar.extractfile(pkg_info).read().decode()
        wheel_files = {p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()}
        # the wheel's .dist-info (METADATA, licenses/) without building the extension
        meta_dir = Path(out) / "meta"
        meta_dir.mkdir()
        prepare = ("import sys; from setuptools import build_meta as b; "
                   "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))")
        info = subprocess.run([sys.executable, "-c", prepare, str(meta_dir)], cwd=tree, check=True,
                              capture_output=True, text=True).stdout.split()[-1]
        wheel_meta = (meta_dir / info / "METADATA").read_text()
        wheel_license = (meta_dir / info / "licenses" / "LICENSE").is_file()
    problems = [f"{sdist.name} lacks {name}" for name in sorted(needed() - names)]
    problems += [f"the wheel would lack {name}" for name in sorted(installed() - wheel_files)]
    problems += metadata_problems(sdist_meta, f"{sdist.name} PKG-INFO")
    problems += metadata_problems(wheel_meta, f"wheel {info}/METADATA")
    if not wheel_license:
        problems.append(f"the wheel's {info}/licenses/LICENSE is missing")
    if problems:
        print(f"dist-check: {len(problems)} problem(s):", *problems, sep="\n  ")
        return 1
    print(f"dist-check: {sdist.name} holds all {len(needed())} files the build compiles, includes or "
          f"installs; the wheel would get all {len(installed())} package files and {LICENSE} metadata "
          f"(version {version()}, LICENSE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
