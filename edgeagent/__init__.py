"""edgeagent: an offline-first agent where a small local GGUF model makes grammar-constrained tool calls."""

from edgeagent.__about__ import __version__

__all__ = ["__version__"]
