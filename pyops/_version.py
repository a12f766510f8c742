"""The one place the version is written: ``pyops.__version__`` imports it and setuptools reads it
(statically, ``[tool.setuptools.dynamic]`` in pyproject.toml) into the distribution's metadata."""

__version__ = "0.1.0"
