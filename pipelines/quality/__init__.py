"""Data quality: Great Expectations suites (``expectations/``) run as gates before writes."""

# The public modules, imported on use (``from pipelines.quality import stage``): importing the
# package itself stays free of Spark.
__all__ = ["gate", "quarantine", "results", "status", "suites"]
