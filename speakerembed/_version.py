"""The package version (read by hatchling from this file)."""

__all__ = ["__version__"]

__version__ = "0.2.0"
