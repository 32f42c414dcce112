"""The package's version: the one place it is written (pyproject.toml reads it from here at build time).

A literal rather than `importlib.metadata.version("rtflow")`, which costs about 50 ms at every start-up.
"""

__version__ = "0.1.0"
