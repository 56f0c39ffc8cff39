"""Genomic variant ingestion: VCF/BCF -> bronze/silver variants, biomarkers, actionability.

The stage entry point is :func:`pipelines.genomics.stage.ingest_variants`; the module
docstrings of ``sources`` (files, headers, pieces), ``reader`` (pysam + Arrow in Spark
tasks), ``bronze``, ``silver``, ``biomarkers`` and ``actionable`` describe each step, and
``README.md`` the tables and decisions.
"""

# The public modules, imported on use (``from pipelines.genomics import stage``): importing the
# package itself stays free of Spark.
__all__ = ["config", "declared", "matching", "proteins", "sources", "stage", "staging"]
