"""edgeagent.metrics."""
