"""edgeagent.store."""
