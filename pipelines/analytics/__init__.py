"""Analyst tools: read-only SQL over the lakehouse and the helpers the notebooks use."""

# The public modules, imported on use (``from pipelines.analytics import stage``): importing the
# package itself stays free of Spark.
__all__ = ["cohort", "monitoring", "notebook", "privacy_risk", "ranking_audit", "sql", "survival"]
