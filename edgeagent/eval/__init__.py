"""Evaluation harnesses: ``edgeagent.eval.bfcl`` runs BFCL items through the local model."""
