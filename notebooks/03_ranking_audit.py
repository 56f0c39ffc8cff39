# Databricks notebook source
# MAGIC %md
# MAGIC # Ranking audit
# MAGIC
# MAGIC What does oncorank recommend first, for whom, and how does that compare with what
# MAGIC patients actually received? Reads the latest board date of `gold.treatment_rankings`
# MAGIC and the patients' features and first-line treatment from `gold.patient_features`.
# MAGIC
# MAGIC * how often each treatment ranks first, overall and by subgroup (cancer type, stage,
# MAGIC   a biomarker);
# MAGIC * agreement: the share of patients whose received first-line treatment is the one
# MAGIC   ranked first, by cancer type;
# MAGIC * survival of patients who received the top-ranked option versus those who did not
# MAGIC   (observational: confounded by who gets which treatment, but a large gap in the wrong
# MAGIC   direction is a red flag);
# MAGIC * how often the top option carries an overlap warning or a contraindication.
# MAGIC
# MAGIC Parameters: `board_date` (ISO date, default the latest), `biomarker` (default egfr_mut).

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
from pipelines.analytics.ranking_audit import (
    agreement,
    agreement_rate,
    latest_board,
    top_choice_share,
    top_choices,
)
from pipelines.analytics.survival import km_by_group, logrank, plot_km

nb = open_notebook(globals())
BOARD_DATE = param("board_date", "latest", nb.dbutils)
BIOMARKER = param("biomarker", "egfr_mut", nb.dbutils)

# COMMAND ----------

rankings_df = nb.read("gold.treatment_rankings")
features_df = nb.read("gold.patient_features")
if rankings_df is None or features_df is None:
    raise SystemExit("gold.treatment_rankings and gold.patient_features are needed: run the "
                     "score stage first.")
rankings = rankings_df.toPandas()
if BOARD_DATE == "latest":
    rankings = latest_board(rankings)
else:
    rankings = rankings[rankings["board_date"].astype(str) == BOARD_DATE]
boards = sorted(rankings["board_date"].astype(str).unique()) if "board_date" in rankings else []
print(f"{rankings['patient_key'].nunique()} patients ranked for board date(s) {boards}; "
      f"gold.treatment_rankings version {nb.version('gold.treatment_rankings')}")

flags = biomarker_flags(features_df.columns)
feature_cols = ["patient_key", "cancer_type", "stage", "treatment", "os_months", "os_event",
                *[f for f in flags if f == BIOMARKER]]
features = features_df.select(*[c for c in feature_cols if c in features_df.columns]).toPandas()
if BIOMARKER in features:
    features[f"{BIOMARKER}_status"] = features[BIOMARKER].map(
        {True: "positive", False: "negative"}).fillna("unknown")

top = top_choices(rankings)

# COMMAND ----------

# MAGIC %md
# MAGIC ## How often each treatment ranks first

# COMMAND ----------

shares: dict[str, pd.DataFrame] = {}
for by in ("cancer_type", "stage", f"{BIOMARKER}_status"):
    if by in features:
        shares[by] = top_choice_share(top, features, by)
        nb.print_frame(shares[by].round(3), f"Top-ranked treatment by {by}")

by_type = shares["cancer_type"].pivot(index="cancer_type", columns="top_treatment",
                                      values="patients").fillna(0)
fig, ax = plt.subplots(figsize=(8, 0.5 * len(by_type) + 1.5))
by_type.plot.barh(stacked=True, ax=ax)
ax.set_xlabel("patients ranked")
ax.set_ylabel("")
ax.set_title("Top-ranked treatment per cancer type")
ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
nb.show(fig, "audit_top_choice_by_cancer_type")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Agreement with what was given

# COMMAND ----------

given = features[["patient_key", "cancer_type", "treatment", "os_months", "os_event"]]
agree = agreement(top, given)
overall = agreement_rate(agree)
per_type = agreement_rate(agree, "cancer_type")
nb.print_frame(overall.round(3), "Received the top-ranked treatment (all patients)")
nb.print_frame(per_type.round(3), "Received the top-ranked treatment, by cancer type")

followed = agree.dropna(subset=["os_months", "os_event"]).copy()
followed["followed_top"] = followed["agrees"].map({True: "received top option",
                                                  False: "received another option"})
followed["os_event"] = followed["os_event"].astype(int)
outcome_test = None
outcome_curves = km_by_group(followed, "os_months", "os_event", "followed_top")
if len(outcome_curves) == 2:
    outcome_test = logrank(followed, "os_months", "os_event", "followed_top")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_km(ax, outcome_curves, "Overall survival by whether the top option was received",
            test=outcome_test)
    nb.show(fig, "audit_followed_top_option")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Flags on the top option

# COMMAND ----------

flag_rows = {"patients": len(top)}
if "overlap_warning" in top:
    flag_rows["top option has an overlap warning"] = int(top["overlap_warning"].fillna(False)
                                                         .astype(bool).sum())
if "contraindications" in top:
    flag_rows["top option has a contraindication"] = int(top["contraindications"].map(
        lambda v: v is not None and len(v) > 0).sum())
if "evidence_level" in top:
    flag_rows["top option has knowledge-base evidence"] = int(top["evidence_level"].notna()
                                                              .sum())
flag_summary = pd.DataFrame([flag_rows])
nb.print_frame(flag_summary, "Top options with flags")
