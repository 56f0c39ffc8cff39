# Databricks notebook source
# MAGIC %md
# MAGIC # Survival by biomarker and treatment
# MAGIC
# MAGIC Kaplan–Meier curves of overall survival from the index date (start of first-line
# MAGIC therapy), with log-rank tests: by cancer type, by biomarker status within a cancer type,
# MAGIC by first-line treatment, and by treatment within biomarker-positive and -negative
# MAGIC patients — e.g. "how did EGFR-mutant NSCLC patients do on osimertinib first line?".
# MAGIC
# MAGIC These are observational comparisons: who received what was not randomised, so a
# MAGIC difference between curves mixes treatment effect and patient selection. The model
# MAGIC notebooks and `gold.treatment_rankings` adjust for the patient's features; this
# MAGIC notebook shows the raw data they learn from.
# MAGIC
# MAGIC Parameters (widgets on Databricks, `ONCORANK_<NAME>` environment variables locally):
# MAGIC `cancer_type` (OncoTree code, default NSCLC) and `biomarker` (a flag column of
# MAGIC `gold.patient_features`, default egfr_mut).

# COMMAND ----------

import os
import sys

try:
    import pipelines  # noqa: F401
except ImportError:  # the bundle syncs notebooks/ next to pipelines/
    sys.path.insert(0, os.path.abspath(".."))

import matplotlib.pyplot as plt
import pandas as pd

from pipelines.analytics.cohort import biomarker_flags
from pipelines.analytics.notebook import open_notebook, param
from pipelines.analytics.survival import km_by_group, logrank, plot_km, survival_table

nb = open_notebook(globals())
CANCER_TYPE = param("cancer_type", "NSCLC", nb.dbutils)
BIOMARKER = param("biomarker", "egfr_mut", nb.dbutils)

# COMMAND ----------

features_df = nb.read("gold.patient_features")
if features_df is None:
    raise SystemExit("gold.patient_features is needed: run the build-features stage first.")
flags = biomarker_flags(features_df.columns)
if BIOMARKER not in flags:
    raise ValueError(f"biomarker {BIOMARKER!r} is not a flag of gold.patient_features; "
                     f"choose one of {', '.join(flags)}.")
cohort = (features_df.select("patient_key", "cancer_type", "treatment", "os_months",
                             "os_event", *flags)
          .dropna(subset=["os_months", "os_event"]).toPandas())
cohort["os_event"] = cohort["os_event"].astype(int)
print(f"{len(cohort)} patients with follow-up, {int(cohort['os_event'].sum())} deaths; "
      f"gold.patient_features version {nb.version('gold.patient_features')}")

curves: dict[str, dict] = {}
tests: dict[str, dict] = {}
tables: dict[str, pd.DataFrame] = {}


def analyse(name: str, data: pd.DataFrame, group: str, title: str) -> None:
    """Kaplan–Meier per group, log-rank across groups, a figure and a summary table."""
    groups = km_by_group(data, "os_months", "os_event", group)
    if len(groups) < 2:
        print(f"{title}: fewer than two groups with enough patients; skipped.")
        return
    kept = data[data[group].astype(str).isin(groups)]
    tests[name] = logrank(kept, "os_months", "os_event", group)
    curves[name] = groups
    tables[name] = survival_table(groups)
    longest = max(float(km["time"].max()) for km in groups.values())
    step = 6 if longest <= 36 else 12
    ticks = list(range(0, int(longest // step) * step + step, step))
    fig, ax = plt.subplots(figsize=(7, 4.5 + 0.3 * len(groups)))
    fig.subplots_adjust(left=0.22, bottom=0.18 + 0.07 * len(groups))
    plot_km(ax, groups, title, test=tests[name], at_risk_ticks=ticks)
    nb.show(fig, f"km_{name}")
    nb.print_frame(tables[name].round(3), title)


# COMMAND ----------

# MAGIC %md
# MAGIC ## By cancer type

# COMMAND ----------

analyse("cancer_type", cohort, "cancer_type", "Overall survival by cancer type")

# COMMAND ----------

# MAGIC %md
# MAGIC ## By biomarker status within the cancer type
# MAGIC Patients whose status is unknown are left out (unknown is not negative).

# COMMAND ----------

subset = cohort[cohort["cancer_type"] == CANCER_TYPE].copy()
subset["status"] = subset[BIOMARKER].map({True: f"{BIOMARKER}+", False: f"{BIOMARKER}-"})
analyse("biomarker", subset.dropna(subset=["status"]), "status",
        f"{CANCER_TYPE}: overall survival by {BIOMARKER}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## By first-line treatment within the cancer type

# COMMAND ----------

analyse("treatment", subset.dropna(subset=["treatment"]), "treatment",
        f"{CANCER_TYPE}: overall survival by first-line treatment")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Treatment within biomarker-positive and biomarker-negative patients
# MAGIC A treatment that helps only biomarker-positive patients shows a gap between its curve
# MAGIC and the others in the first plot and none in the second.

# COMMAND ----------

for status in (f"{BIOMARKER}+", f"{BIOMARKER}-"):
    part = subset[(subset["status"] == status) & subset["treatment"].notna()]
    analyse(f"treatment_{'pos' if status.endswith('+') else 'neg'}", part, "treatment",
            f"{CANCER_TYPE}, {status}: overall survival by first-line treatment")

# COMMAND ----------

summary = pd.DataFrame([{"comparison": name, "chisq": t["chisq"], "df": t["df"],
                         "p_value": t["p_value"]} for name, t in tests.items()])
nb.print_frame(summary, "Log-rank tests")
