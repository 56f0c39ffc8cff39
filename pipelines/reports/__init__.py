"""Tumor-board reports: one self-contained HTML page (+ PDF) per patient and an index per board."""

# The public modules, imported on use (``from pipelines.reports import stage``): importing the
# package itself stays free of Spark.
__all__ = ["browser", "evidence_listing", "plots", "render", "sections", "stage"]
