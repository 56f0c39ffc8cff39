"""Per-patient treatment rankings (``score`` stage) and population drift."""

# The public modules, imported on use (``from pipelines.ranking import stage``): importing the
# package itself stays free of Spark.
__all__ = ["abstention", "drift", "stage", "steps"]
