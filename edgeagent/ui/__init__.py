"""edgeagent.ui."""
