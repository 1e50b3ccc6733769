"""edgeagent.eval."""
