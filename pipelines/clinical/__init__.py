"""Clinical data: FHIR R4 / CSV ingestion, treatment lines, outcomes, comorbidity indices."""

# The public modules, imported on use (``from pipelines.clinical import stage``): importing the
# package itself stays free of Spark.
__all__ = ["codes", "commands", "comorbidity", "stage"]
