"""Import shim for the official Wavehax code (github.com/chomeyama/wavehax), for benchmarking the
generator a user would actually run.  Nothing of it is copied here: point $PYOPS_WAVEHAX_OFFICIAL at a
checkout of that repository (the folder holding ``wavehax/generators/wavehax.py``) and
:func:`load` imports it from there.

The official package imports ``einops`` (required: ``pip install einops``) and, at module level,
``torchaudio.functional.resample`` (only its sawtooth prior calls it), ``librosa.filters.mel`` (only
its mel-spectrogram extractor calls it) and ``scipy`` (its PQMF decomposer).  When torchaudio or
librosa is not installed, :func:`load` lends the import a stand-in whose functions raise if ever
called, and removes it from ``sys.modules`` again afterwards; the generator with the "pcph" prior
(every official configuration) never calls them, so it runs the official arithmetic unchanged.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from dataclasses import dataclass
from typing import Optional

ENV = "PYOPS_WAVEHAX_OFFICIAL"


@dataclass
class Official:
    """The imported official modules: ``generators`` (``WavehaxGenerator``) and ``modules``
    (``ConvNeXtBlock2d``, ``generate_pcph``, ...), the checkout they came from and its stand-ins."""

    generators: types.ModuleType
    modules: types.ModuleType
    path: str
    stand_ins: tuple[str, ...]

    def generator(self, **config):
        """The official ``WavehaxGenerator(**config)``: an official YAML's keys, ``_target_`` dropped."""
        return self.generators.WavehaxGenerator(**{k: v for k, v in config.items() if k != "_target_"})


def _stand_in(name: str, attrs: dict[str, str]) -> dict[str, types.ModuleType]:
    """Modules ``name`` (and its parents) whose listed functions raise if called."""

    def missing(fn: str, why: str):
        def f(*args, **kwargs):
            raise RuntimeError(f"{name}.{fn} is a stand-in ({why}); install {name.split('.')[0]}")

        return f

    out = {}
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod = types.ModuleType(".".join(parts[:i]))
        mod.__path__ = []  # a package, so submodules resolve
        out[mod.__name__] = mod
        if i > 1:
            setattr(out[".".join(parts[:i - 1])], parts[i - 1], mod)
    for fn, why in attrs.items():
        setattr(out[name], fn, missing(fn, why))
    return out


_STAND_INS = {
    "torchaudio": ("torchaudio.functional", {"resample": "used only by the official sawtooth prior"}),
    "librosa": ("librosa.filters", {"mel": "used only by the official mel-spectrogram extractor"}),
}
_CACHE: dict[str, "Official | str"] = {}


def load(path: Optional[str] = None) -> tuple[Optional[Official], str]:
    """(the official modules, "") or (None, why not): from ``path`` or $PYOPS_WAVEHAX_OFFICIAL."""
    path = path or os.environ.get(ENV, "")
    if not path:
        return None, f"${ENV} is not set (a checkout of github.com/chomeyama/wavehax)"
    path = os.path.abspath(os.path.expanduser(path))
    if path in _CACHE:
        got = _CACHE[path]
        return (got, "") if isinstance(got, Official) else (None, got)
    why = ""
    if not os.path.isfile(os.path.join(path, "wavehax", "generators", "wavehax.py")):
        why = f"${ENV}={path} has no wavehax/generators/wavehax.py (want the repository's root)"
    else:
        try:
            importlib.import_module("einops")
        except ImportError:
            why = "the official code needs einops (pip install einops)"
    if why:
        _CACHE[path] = why
        return None, why
    if "wavehax" in sys.modules:
        origin = os.path.abspath(getattr(sys.modules["wavehax"], "__file__", "") or "")
        if not origin.startswith(path + os.sep):
            why = f"another 'wavehax' is already imported (from {origin}), not the one under {path}"
            _CACHE[path] = why
            return None, why
    lent: dict[str, types.ModuleType] = {}
    for top, (name, attrs) in _STAND_INS.items():
        try:
            importlib.import_module(name)
        except ImportError:
            lent.update(_stand_in(name, attrs))
    saved_path = list(sys.path)
    sys.modules.update({k: v for k, v in lent.items() if k not in sys.modules})
    sys.path.insert(0, path)
    try:
        generators = importlib.import_module("wavehax.generators")
        modules = importlib.import_module("wavehax.modules")
    except Exception as e:  # noqa: BLE001 - any import failure: skip the rows with the reason
        why = f"importing the official code from {path} failed: {type(e).__name__}: {e}"
        for k in [k for k in sys.modules if k == "wavehax" or k.startswith("wavehax.")]:
            del sys.modules[k]
        _CACHE[path] = why
        return None, why
    finally:
        sys.path[:] = saved_path
        for k, v in lent.items():  # the stand-ins stay referenced by the official modules only
            if sys.modules.get(k) is v:
                del sys.modules[k]
    origin = os.path.abspath(generators.__file__)
    if not origin.startswith(path + os.sep):
        why = f"'wavehax' resolved to {origin}, not under {path}"
        _CACHE[path] = why
        return None, why
    got = Official(generators, modules, path, tuple(sorted({k.split(".")[0] for k in lent})))
    _CACHE[path] = got
    return got, ""
