"""edgeagent.tools."""
