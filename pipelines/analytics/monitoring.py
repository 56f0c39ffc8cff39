"""Model monitoring: discrimination over time and drift of the scored population.

* :func:`realised_c_index` — for each board date, Harrell's C between the predicted RMST of
  the treatment each patient actually received and the survival later observed. It answers
  "do the predictions still order patients correctly?" on data the model was not trained on
  (as far as patients scored before their outcome was known).
* :func:`mlflow_metric_history` — the validation metrics every training run logged.
* drift is :func:`pipelines.ranking.drift.feature_drift`, the same function the score job
  uses for ``gold.drift``.
"""

from __future__ import annotations

import pandas as pd

from pipelines.analytics.survival import harrell_c

MIN_PATIENTS = 10


def realised_c_index(rankings: pd.DataFrame, outcomes: pd.DataFrame,
                     period: str = "board_date", min_patients: int = MIN_PATIENTS,
                     ) -> pd.DataFrame:
    """Harrell's C of predicted_rmst (received treatment) vs observed OS, per ``period``.

    ``outcomes`` has patient_key, treatment (received), os_months, os_event.
    """
    received = rankings.merge(outcomes[["patient_key", "treatment", "os_months", "os_event"]],
                              on=["patient_key", "treatment"], how="inner")
    received = received.dropna(subset=["predicted_rmst", "os_months", "os_event"])
    rows = []
    for level, part in received.groupby(period):
        n, events = len(part), int(part["os_event"].sum())
        c = (harrell_c(part["os_months"], part["os_event"], part["predicted_rmst"])
             if n >= min_patients and events else float("nan"))
        rows.append({period: level, "patients": n, "events": events, "harrell_c": c})
    return pd.DataFrame(rows, columns=[period, "patients", "events", "harrell_c"])


def mlflow_metric_history(tracking_uri: str, experiment_prefix: str,
                          metrics: tuple[str, ...] = ("harrell_c", "uno_c")) -> pd.DataFrame:
    """Runs of every experiment named ``<prefix>`` or ``<prefix>/<family>``, with ``metrics``.

    Returns experiment, run_id, start_time, the metrics and the registered-model tags when
    present; empty when the store has no such experiment.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiments = [e for e in client.search_experiments()
                   if e.name == experiment_prefix or e.name.startswith(experiment_prefix + "/")]
    rows = []
    for exp in experiments:
        for run in client.search_runs([exp.experiment_id], max_results=5000):
            row = {"experiment": exp.name, "run_id": run.info.run_id,
                   "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True)}
            row.update({m: run.data.metrics.get(m) for m in metrics})
            if any(row[m] is not None for m in metrics):
                rows.append(row)
    columns = ["experiment", "run_id", "start_time", *metrics]
    return pd.DataFrame(rows, columns=columns).sort_values("start_time").reset_index(drop=True)
