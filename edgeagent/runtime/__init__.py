"""edgeagent.runtime."""
