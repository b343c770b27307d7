"""SomaFractalMemory: long-term memory for AI agents on PostgreSQL, Milvus and Redis."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("somafractalmemory")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
