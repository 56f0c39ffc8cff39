# Databricks notebook source
# MAGIC %md
# MAGIC # Model monitoring
# MAGIC
# MAGIC Is the model still right, and is it still seeing the patients it learned from?
# MAGIC
# MAGIC * **C-index over time, validation**: the Harrell and Uno C-index each training run
# MAGIC   logged to MLflow on its held-out patients.
# MAGIC * **C-index over time, realised**: for each board date, Harrell's C between the
# MAGIC   predicted RMST of the treatment each patient then received and the survival observed
# MAGIC   since. A fall here, with stable validation numbers, means the world moved.
# MAGIC * **Drift**: population stability index (PSI) and KS statistic per feature between the
# MAGIC   champion's training cohort and each scored cohort (`gold.drift`, written by the score
# MAGIC   job; rule of thumb: PSI < 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift).

# COMMAND ----------

import os
import sys

try:
    import pipelines  # noqa: F401
except ImportError:  # the bundle syncs notebooks/ next to pipelines/
    sys.path.insert(0, os.path.abspath(".."))

import matplotlib.pyplot as plt
import pandas as pd
from pyspark.sql import functions as F

from pipelines.analytics.monitoring import mlflow_metric_history, realised_c_index
from pipelines.analytics.notebook import open_notebook

nb = open_notebook(globals())

# COMMAND ----------

# MAGIC %md
# MAGIC ## Validation C-index of every training run (MLflow)

# COMMAND ----------

history = mlflow_metric_history(nb.settings.tracking_uri, nb.settings.mlflow_experiment)
if history.empty:
    print(f"no training runs with a C-index under experiment {nb.settings.mlflow_experiment!r}")
else:
    nb.print_frame(history.round(3), "Training runs")
    fig, ax = plt.subplots(figsize=(8, 4))
    for (experiment, metric), part in (history.melt(
            id_vars=["experiment", "start_time"], value_vars=["harrell_c", "uno_c"],
            var_name="metric").dropna(subset=["value"]).groupby(["experiment", "metric"])):
        ax.plot(part["start_time"], part["value"], marker="o",
                label=f"{experiment.rsplit('/', 1)[-1]} {metric}")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel("C-index (held-out patients)")
    ax.set_title("Validation C-index per training run")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    nb.show(fig, "monitoring_validation_c_index")

# COMMAND ----------

# MAGIC %md
# MAGIC ## C-index of every training run, from `gold.model_metrics`
# MAGIC The same numbers as a Delta table (readable with SQL, DuckDB, and by anyone granted
# MAGIC gold), with the registered version and whether it became the champion (★).

# COMMAND ----------

metrics_df = nb.read("gold.model_metrics")
model_metrics = pd.DataFrame()
if metrics_df is not None:
    model_metrics = metrics_df.filter(F.col("metric").isin("harrell_c", "uno_c")).select(
        "trained_at", "family", "model_version", "promoted", "metric", "value").toPandas()
    model_metrics["trained_at"] = pd.to_datetime(model_metrics["trained_at"], utc=True)
    model_metrics = model_metrics.sort_values(["trained_at", "family", "metric"])
    nb.print_frame(model_metrics.round(3), "C-index per training run (held-out patients)")
    if len(model_metrics):
        fig, ax = plt.subplots(figsize=(8, 4))
        for (family, metric), part in model_metrics.groupby(["family", "metric"]):
            line = ax.plot(part["trained_at"], part["value"], marker="o",
                           label=f"{family} {metric}")[0]
            champion = part[part["promoted"].fillna(False).astype(bool)]
            ax.scatter(champion["trained_at"], champion["value"], marker="*", s=160,
                       color=line.get_color(), zorder=3)
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel("C-index (held-out patients)")
        ax.set_title("C-index per training run (★ = promoted to champion)")
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
        nb.show(fig, "monitoring_model_metrics")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Realised C-index per board date

# COMMAND ----------

rankings_df = nb.read("gold.treatment_rankings")
features_df = nb.read("gold.patient_features")
realised = pd.DataFrame()
if rankings_df is not None and features_df is not None:
    rankings = rankings_df.select("patient_key", "treatment", "predicted_rmst",
                                  "board_date").toPandas()
    outcomes = features_df.select("patient_key", "treatment", "os_months",
                                  "os_event").toPandas()
    realised = realised_c_index(rankings, outcomes)
    nb.print_frame(realised.round(3), "Realised C-index (received treatment) per board date")
    shown = realised.dropna(subset=["harrell_c"])
    if len(shown):
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(pd.to_datetime(shown["board_date"]), shown["harrell_c"], marker="o")
        for _, row in shown.iterrows():
            ax.annotate(f"n={row['patients']}", (pd.to_datetime(row["board_date"]),
                                                 row["harrell_c"]), fontsize=7,
                        textcoords="offset points", xytext=(0, 6), ha="center")
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("Harrell's C")
        ax.set_title("Realised C-index of predicted RMST per board date")
        fig.autofmt_xdate()
        nb.show(fig, "monitoring_realised_c_index")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Drift of the scored population

# COMMAND ----------

drift_df = nb.read("gold.drift")
drift = pd.DataFrame()
if drift_df is not None:
    drift = drift_df.toPandas()
    latest = drift[drift["board_date"] == drift["board_date"].max()].sort_values(
        "psi", ascending=False)
    nb.print_frame(latest.head(20).round(3), f"Drift at board date {latest['board_date'].max()}")
    if "drifted" in latest and latest["drifted"].fillna(False).astype(bool).any():
        print("WARNING: drifted features:",
              ", ".join(latest.loc[latest["drifted"].fillna(False).astype(bool), "feature"]))

    top_features = latest.head(15).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top_features) + 1.5))
    ax.barh(top_features["feature"], top_features["psi"])
    ax.axvline(0.1, color="orange", linestyle="--", linewidth=1, label="0.1 moderate")
    ax.axvline(0.25, color="red", linestyle="--", linewidth=1, label="0.25 major")
    ax.set_xlabel("PSI, scored vs training cohort")
    ax.set_title("Feature drift at the latest board date")
    ax.legend(fontsize=7)
    nb.show(fig, "monitoring_drift_latest")

    over_time = drift.pivot_table(index="board_date", columns="feature", values="psi")
    if len(over_time) > 1:
        worst = latest["feature"].head(6)
        fig, ax = plt.subplots(figsize=(8, 4))
        for feature in worst:
            ax.plot(pd.to_datetime(over_time.index), over_time[feature], marker="o",
                    label=feature)
        ax.axhline(0.25, color="red", linestyle="--", linewidth=1)
        ax.set_ylabel("PSI")
        ax.set_title("Drift over time (most drifted features)")
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
        nb.show(fig, "monitoring_drift_over_time")
