"""edgeagent.agent."""
