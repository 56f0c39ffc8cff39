"""Patient-level tables derived from silver.variants: biomarkers and actionable alterations.

Both are recomputed for every patient on each run (a full snapshot merged with deletes):
a patient's variants may come from several files ingested at different times, and a new
knowledge-base release or cancer type changes matches of files ingested long ago.
"""

from __future__ import annotations

import logging

from pipelines.catalog import regimen_catalog
from pipelines.genomics.actionable import build_actionable
from pipelines.genomics.biomarkers import biomarker_comments, build_biomarkers, flag_rules
from pipelines.genomics.config import GenomicsConfig
from pipelines.genomics.matching import known_sites, variant_facts
from pipelines.knowledge.kb import knowledge_dir, load_knowledge_base, tumor_suppressors
from pipelines.lakehouse.audit import JobRun

log = logging.getLogger("oncorank.genomics")


def patient_cancer_types(run: JobRun):
    """(patient_key, cancer_type) from silver.patients, else the tumour type declared at
    ingestion (silver.declared_tumor_types); None when neither table exists."""
    from pipelines.genomics.declared import with_declared

    patients = run.read_optional(run.table("silver", "patients"))
    if patients is None or not {"patient_key", "cancer_type"} <= set(patients.columns):
        patients = None
    else:
        patients = patients.select("patient_key", "cancer_type").dropna(subset=["patient_key"])
    return with_declared(run, patients)


def write_derived(run: JobRun, cfg: GenomicsConfig) -> None:
    spark, settings = run.spark, run.settings
    variants = run.read_optional(run.table("silver", "variants"))
    samples = run.read_optional(run.table("silver", "sequenced_samples"))
    if variants is None or samples is None:
        return
    kb = load_knowledge_base(knowledge_dir(settings))
    log.info("knowledge base %s: %s", kb.version, kb.summary())
    sites = known_sites(spark, kb.gene_alterations())
    facts = variant_facts(variants, sites, tumor_suppressors()).persist()
    try:
        biomarkers_ref = settings.table("silver", "biomarkers")
        biomarkers = build_biomarkers(variants, samples, facts, flag_rules(spark), cfg)
        run.write(biomarkers, biomarkers_ref, mode="merge", keys=["patient_key"],
                  delete_missing=True, primary=False, comments=biomarker_comments())
        actionable = build_actionable(spark, facts, run.read(biomarkers_ref),
                                      patient_cancer_types(run), kb, regimen_catalog())
        run.write(actionable, settings.table("silver", "actionable_alterations"),
                  mode="merge", keys=["alteration_key"], delete_missing=True, primary=False)
    finally:
        facts.unpersist()
