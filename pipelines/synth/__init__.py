"""Synthetic oncology cohorts with planted treatment effects and a known ground truth.

``generate_cohort(out, patients, seed, fmt="vcf", multi_sample=False)`` writes VCFs, FHIR
NDJSON, flat CSVs, clinical notes and ``truth/`` (see :mod:`pipelines.synth.cohort`).
"""

from pipelines.synth.cohort import generate_cohort

__all__ = ["generate_cohort"]
