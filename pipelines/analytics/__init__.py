"""Analyst tools: read-only SQL over the lakehouse and the helpers the notebooks use."""
