"""edgeagent.grammar."""
