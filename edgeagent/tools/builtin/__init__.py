"""edgeagent.tools.builtin."""
