"""edgeagent: an offline-first agent where a small local GGUF model makes grammar-constrained tool calls."""

from __future__ import annotations

from edgeagent.__about__ import __version__

__all__ = [
    "Agent",
    "AgentResult",
    "FakeModel",
    "Settings",
    "Tool",
    "ToolCall",
    "ToolResult",
    "__version__",
    "load_settings",
    "make_agent",
    "propose_calls",
    "tool",
]

_LAZY = {
    "Agent": "edgeagent.agent.loop",
    "AgentResult": "edgeagent.agent.result",
    "FakeModel": "edgeagent.testing",
    "make_agent": "edgeagent.agent.loop",
    "propose_calls": "edgeagent.agent.propose",
    "Settings": "edgeagent.config",
    "load_settings": "edgeagent.config",
    "Tool": "edgeagent.tools.registry",
    "tool": "edgeagent.tools.registry",
    "ToolCall": "edgeagent.types",
    "ToolResult": "edgeagent.types",
}


def __getattr__(name: str):
    """Import the public API lazily so `import edgeagent` stays cheap."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeagent' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
