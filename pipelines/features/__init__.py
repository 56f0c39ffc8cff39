"""build-features: silver tables → ``gold.patient_features`` (dictionary in FEATURES.md)."""

# The public modules, imported on use (``from pipelines.features import stage``): importing the
# package itself stays free of Spark.
__all__ = ["dictionary", "stage", "steps"]
