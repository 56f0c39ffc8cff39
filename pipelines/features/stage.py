"""The ``build-features`` stage: silver → ``gold.patient_features``.

Reads whichever of its silver inputs exist (each absent one is logged and gives typed nulls),
builds one row per patient with :mod:`pipelines.features.steps`, quarantines patient rows it
cannot key (no patient_key, or a duplicate of a patient already kept) and writes the table as
a full snapshot: MERGE on (patient_key, index_date) with deletion of patients no longer in
silver, so a re-run leaves the table unchanged. When the column set changes (e.g. the
comorbidity stage starts emitting a new component), the table is rewritten with the new
schema in one commit, and the Delta history keeps the old version.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.catalog import regimen_catalog
from pipelines.features import steps
from pipelines.lakehouse import delta
from pipelines.lakehouse.audit import REASON_COL, RULE_COL, JobRun, job_run
from pipelines.lakehouse.settings import Settings

log = logging.getLogger("oncorank.features")

STAGE = "build-features"
INPUTS = ("patients", "outcomes", "treatment_lines", "comorbidities", "biomarkers",
          "actionable_alterations", "note_findings", "diagnoses", "biomarker_observations")
KEYS = ["patient_key", "index_date"]


def assemble(tables: dict[str, DataFrame | None], regimens: list[str]) -> DataFrame:
    """Every feature for the keyed spine rows (``_dup_rank == 1``) — pure, no I/O."""
    cmap = steps.concept_map()
    spine = steps.patient_spine(tables.get("patients"), *[tables.get(n) for n in INPUTS[1:]])
    good = spine.filter(F.col("patient_key").isNotNull() & (F.col("_dup_rank") == 1))
    vcf = steps.biomarker_flags_from_vcf(tables.get("biomarkers"), cmap)
    return (
        good.transform(steps.with_stage_number)
        .transform(lambda d: steps.with_outcomes(d, tables.get("outcomes")))
        .transform(lambda d: steps.with_treatment(d, tables.get("treatment_lines")))
        .transform(lambda d: steps.with_biomarkers(
            d, vcf, tables.get("note_findings"), cmap, tables.get("biomarker_observations")))
        .transform(lambda d: steps.with_metastases_from_codes(d, tables.get("diagnoses")))
        .transform(steps.with_ecog_and_smoking)
        .transform(lambda d: steps.with_actionability(d, tables.get("actionable_alterations"),
                                                      regimens))
        .transform(lambda d: steps.with_comorbidities(d, tables.get("comorbidities")))
        .transform(steps.select_features)
    )


def rejected(tables: dict[str, DataFrame | None]) -> DataFrame:
    """Spine rows that cannot be keyed, with the quarantine rule and reason."""
    spine = steps.patient_spine(tables.get("patients"), *[tables.get(n) for n in INPUTS[1:]])
    return spine.filter(F.col("patient_key").isNull() | (F.col("_dup_rank") > 1)).select(
        *[c for c in spine.columns if c != "_dup_rank"],
        F.when(F.col("patient_key").isNull(), "patient_key_not_null")
        .otherwise("one_row_per_patient").alias(RULE_COL),
        F.when(F.col("patient_key").isNull(), "silver.patients row has no patient_key")
        .otherwise("duplicate patient row in silver.patients; the latest diagnosis was kept")
        .alias(REASON_COL),
    )


def build_features(spark: SparkSession, settings: Settings, parent_run_id: str | None = None
                   ) -> JobRun:
    """Build ``gold.patient_features`` from the silver layer; returns the audited JobRun."""
    with job_run(spark, settings, STAGE, parent_run_id) as run:
        tables = {name: run.read_optional(settings.table("silver", name),
                                          consequence="its features are null")
                  for name in INPUTS}
        if all(t is None for t in tables.values()):
            log.warning("%s: no silver input exists yet; nothing to build", STAGE)
            return run
        regimens = [r.name for r in regimen_catalog().regimens]
        spine = steps.patient_spine(tables["patients"], *[tables[n] for n in INPUTS[1:]])
        run.count_in(spine.count())
        run.quarantine(rejected(tables), settings.table("gold", "patient_features"))
        features = assemble(tables, regimens)
        ref = settings.table("gold", "patient_features")
        options: dict = {"mode": "merge", "keys": KEYS, "delete_missing": True}
        current = delta.read_optional(spark, ref)
        if current is not None:
            existing = current.columns
            if set(existing) != set(features.columns):
                log.warning("%s: feature columns changed (%s added, %s removed); rewriting %s",
                            STAGE, sorted(set(features.columns) - set(existing)),
                            sorted(set(existing) - set(features.columns)), ref.key)
                options = {"mode": "overwrite", "allow_schema_change": True}
        run.write(features, ref, **options)
    return run
