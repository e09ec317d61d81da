"""The package version, importable from anywhere below the package face (``lookalike/__init__``)."""

__version__ = "0.1.0"
