# Databricks notebook source
# MAGIC %md
# MAGIC # Cohort overview
# MAGIC
# MAGIC Who is in the lakehouse: patients per cancer type and stage, how many variants, notes
# MAGIC and note findings back them, how common each biomarker is among the patients tested,
# MAGIC and whether last night's load lost anything (data-quality summary).
# MAGIC
# MAGIC Reads `silver` and `gold` tables and `ops` logs only; every patient is a pseudonymised
# MAGIC `patient_key`. On Databricks pick the catalog and schema prefix in the widgets; locally
# MAGIC run `python notebooks/01_cohort_overview.py` with `ONCORANK_LAKEHOUSE` set (default
# MAGIC `.oncorank/lakehouse`; `oncorank demo` writes one under `oncorank-demo/lakehouse`).

# COMMAND ----------

import os
import sys

try:
    import pipelines  # noqa: F401  (installed wheel, or an editable install locally)
except ImportError:  # the bundle syncs notebooks/ next to pipelines/
    sys.path.insert(0, os.path.abspath(".."))

import matplotlib.pyplot as plt
import pandas as pd
from pyspark.sql import functions as F

from pipelines.analytics.cohort import biomarker_flags, biomarker_prevalence, reconciliation
from pipelines.analytics.notebook import open_notebook

nb = open_notebook(globals())

# COMMAND ----------

# MAGIC %md
# MAGIC ## Counts
# MAGIC Rows per table, and distinct patients where the table is per patient.

# COMMAND ----------

COUNTED = ["silver.patients", "silver.outcomes", "silver.treatment_lines", "silver.variants",
           "silver.biomarkers", "silver.actionable_alterations", "silver.notes_deid",
           "silver.note_findings", "silver.comorbidities", "gold.patient_features",
           "gold.treatment_rankings"]
count_rows = []
for key in COUNTED:
    if nb.exists(key):
        df = nb.read(key)
        patients = df.select("patient_key").distinct().count() if "patient_key" in df.columns \
            else None
        count_rows.append({"table": key, "version": nb.version(key), "rows": df.count(),
                           "patients": patients})
counts = pd.DataFrame(count_rows, columns=["table", "version", "rows", "patients"])
nb.print_frame(counts, "Rows and patients per table")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Cancer types and stages

# COMMAND ----------

patients_df = nb.read("silver.patients")
cancer_stage = None
if patients_df is not None:
    cancer_stage = (patients_df.groupBy("cancer_type", "stage").count()
                    .toPandas().pivot(index="cancer_type", columns="stage", values="count")
                    .fillna(0).astype(int))
    cancer_stage["total"] = cancer_stage.sum(axis=1)
    cancer_stage = cancer_stage.sort_values("total", ascending=False)
    nb.print_frame(cancer_stage.reset_index(), "Patients by cancer type and stage")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    cancer_stage.drop(columns="total").plot.barh(stacked=True, ax=ax)
    ax.set_xlabel("patients")
    ax.set_ylabel("cancer type (OncoTree)")
    ax.set_title("Patients by cancer type and stage")
    ax.invert_yaxis()
    nb.show(fig, "cohort_cancer_types")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Biomarker prevalence
# MAGIC From `gold.patient_features`, which joins the VCF-derived flags with affirmed note
# MAGIC findings. A flag is null when the status is unknown (not sequenced, nothing in the
# MAGIC notes), so prevalence is positives among the patients whose status is known.

# COMMAND ----------

features_df = nb.read("gold.patient_features")
prevalence = None
if features_df is not None:
    flags = biomarker_flags(features_df.columns)
    features = features_df.select("patient_key", "cancer_type", *flags).toPandas()
    prevalence = biomarker_prevalence(features, flags, by="cancer_type")
    nb.print_frame(prevalence[prevalence["positive"] > 0], "Biomarker prevalence (tested)")

    grid = prevalence.pivot(index="biomarker", columns="cancer_type", values="prevalence")
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * grid.shape[1], 0.35 * grid.shape[0] + 1.2))
    image = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), value in pd.DataFrame(grid.to_numpy()).stack().items():
        ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="prevalence among tested")
    ax.set_title("Biomarker prevalence by cancer type")
    nb.show(fig, "cohort_biomarker_prevalence")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Notes and findings
# MAGIC Findings by category and ConText status: only `affirmed` findings become features.

# COMMAND ----------

findings_df = nb.read("silver.note_findings")
findings = None
if findings_df is not None:
    findings = (findings_df.groupBy("category", "context").count().toPandas()
                .pivot(index="category", columns="context", values="count").fillna(0)
                .astype(int))
    nb.print_frame(findings.reset_index(), "Note findings by category and context")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Data quality
# MAGIC Every job's counts must reconcile (rows in = rows written + rows quarantined), and
# MAGIC every write passes a Great Expectations gate whose results land in `ops.data_quality`.

# COMMAND ----------

runs_df = nb.read("ops.job_runs")
runs = None
if runs_df is not None:
    runs = reconciliation(runs_df.select("job", "started_at", "status", "rows_in",
                                         "rows_written", "rows_quarantined").toPandas())
    nb.print_frame(runs, "Latest run of each job")
    if not runs["reconciled"].all():
        print("WARNING: some jobs do not reconcile:",
              ", ".join(runs.loc[~runs["reconciled"], "job"]))

quality = None
if nb.exists("ops.data_quality"):
    from pipelines.quality.status import quality_status

    status = quality_status(nb.spark, nb.settings)
    quality = pd.DataFrame([
        {"table": table, "status": s["status"], "passed": s["passed"], "failed": s["failed"],
         "skipped": s["skipped"], "quarantined_rows": s["quarantined_rows"]}
        for table, s in sorted(status["tables"].items())])
    print(f"overall data-quality status: {status['status']}")
    nb.print_frame(quality, "Latest validation per table")
    dq = (nb.read("ops.data_quality").groupBy("table")
          .agg(F.count("*").alias("checks"),
               F.sum(F.when(F.col("success"), 1).otherwise(0)).alias("passed"))
          .toPandas())
    if len(dq):
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(dq) + 1.2))
        dq = dq.sort_values("table")
        ax.barh(dq["table"], dq["passed"] / dq["checks"])
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of expectations passed (all validations)")
        ax.set_title("Data-quality checks per table")
        nb.show(fig, "cohort_data_quality")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Re-identification risk
# MAGIC Pseudonyms and date shifts remove direct identifiers; a patient can still be the only
# MAGIC one with a combination of ordinary facts (age band, sex, ZIP3, cancer type, stage, index
# MAGIC year). `ops.privacy_risk` (written by every clinical load) counts, for growing sets of
# MAGIC these, the patients alone in their combination and those in combinations of fewer
# MAGIC than 5. Share results grouped at a level where few patients are unique.

# COMMAND ----------

risk = None
if nb.exists("ops.privacy_risk"):
    risk = nb.read("ops.privacy_risk").drop("measured_at").toPandas()
elif patients_df is not None:
    from pipelines.analytics.privacy_risk import privacy_risk

    risk = pd.DataFrame(privacy_risk(patients_df))
if risk is not None:
    nb.print_frame(risk, "Patients unique on their quasi-identifiers")
