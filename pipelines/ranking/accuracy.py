"""How well do the rankings recover a known truth? (generated cohorts only)

Two numbers, both computed from the rankings a ``score`` run wrote and the generator's truth:

* **Normalised policy value** of the top-ranked choice,
  (V_model − V_random) / (V_oracle − V_random), where, averaged over patients,
  V_model is the true RMST of the regimen ranked 1, V_random the mean true RMST over the
  patient's candidates (a uniformly random pick) and V_oracle the best true RMST. 1 means the
  ranking always picks the truly best regimen, 0 means no better than chance.
* **Planted-match top-1 share**: among patients with a planted actionable alteration, the share
  whose rank-1 regimen is the therapy that matches it.

>>> import pandas as pd
>>> ranks = pd.DataFrame({"patient_key": ["a", "a", "b", "b"], "treatment": ["x", "y"] * 2,
...                       "rank": [1, 2, 2, 1]})
>>> truth = pd.DataFrame({"patient_key": ["a", "a", "b", "b"], "treatment": ["x", "y"] * 2,
...                       "true_rmst": [20.0, 10.0, 12.0, 18.0]})
>>> ranking_accuracy(ranks, truth)["normalized_policy_value"]
1.0
>>> planted = pd.DataFrame({"patient_key": ["a", "b"], "treatment": ["x", "x"]})
>>> ranking_accuracy(ranks, truth, planted)["planted_top1_share"]
0.5
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError
from pipelines.lakehouse.privacy import pseudonymise


def load_oracle(truth_dir: str | Path, pseudonym_key: bytes) -> pd.DataFrame:
    """``truth/treatment_oracle.csv`` (patient_id, treatment, true_rmst) keyed by patient_key."""
    path = Path(truth_dir) / "treatment_oracle.csv"
    if not path.is_file():
        raise InputNotFoundError(f"Oracle file {path} does not exist; generate a cohort with "
                                 "`oncorank synth` and pass its truth/ folder.")
    oracle = pd.read_csv(path, dtype={"patient_id": str, "treatment": str})
    missing = {"patient_id", "treatment", "true_rmst"} - set(oracle.columns)
    if missing:
        raise SchemaMismatchError(f"Oracle file {path} lacks column(s) {sorted(missing)}; "
                                  "expected patient_id, treatment, true_rmst.")
    oracle["patient_key"] = [pseudonymise(p, pseudonym_key) for p in oracle["patient_id"]]
    return oracle[["patient_key", "patient_id", "treatment", "true_rmst"]]


def planted_pairs(truth_dir: str | Path, pseudonym_key: bytes) -> pd.DataFrame:
    """Patients of a generated cohort with a planted actionable alteration, and its matching
    therapy (``resources/planted_matches.yaml``).

    Reads ``truth/patients.csv`` (``patient_id, cancer_type, drivers`` — ``;``-separated driver
    concepts — and ``msi_status``). Returns ``patient_key, patient_id, alteration, treatment``;
    a patient with two matching alterations keeps the first in the file's order.
    """
    from importlib import resources

    import yaml

    path = Path(truth_dir) / "patients.csv"
    if not path.is_file():
        raise InputNotFoundError(f"Truth file {path} does not exist; generate a cohort with "
                                 "`oncorank synth` and pass its truth/ folder.")
    matches = yaml.safe_load(resources.files("pipelines.ranking.resources")
                             .joinpath("planted_matches.yaml").read_text())
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"patient_id", "cancer_type", "drivers"} - set(truth.columns)
    if missing:
        raise SchemaMismatchError(f"Truth file {path} lacks column(s) {sorted(missing)}.")
    rows = []
    for r in truth.itertuples(index=False):
        table = matches.get(r.cancer_type, {})
        found = [d.strip() for d in r.drivers.split(";") if d.strip()]
        if getattr(r, "msi_status", "") == "MSI-H":
            found.append("MSI-H")
        hit = next((d for d in found if d in table), None)
        if hit:
            rows.append((pseudonymise(r.patient_id, pseudonym_key), r.patient_id, hit,
                         table[hit]))
    return pd.DataFrame(rows, columns=["patient_key", "patient_id", "alteration", "treatment"])


def ranking_accuracy(
    rankings: pd.DataFrame,
    oracle: pd.DataFrame,
    planted: pd.DataFrame | None = None,
) -> dict:
    """Policy value and planted-match accuracy of ``rankings`` against the true RMST.

    Parameters
    ----------
    rankings
        ``patient_key, treatment, rank`` (one board date; e.g. gold.treatment_rankings).
    oracle
        ``patient_key, treatment, true_rmst`` for every candidate of every patient
        (:func:`load_oracle`).
    planted
        Optional ``patient_key, treatment``: the therapy matching each patient's planted
        actionable alteration.

    Returns
    -------
    dict
        ``n_patients`` (patients ranked and in the oracle), ``value``, ``random``, ``oracle``
        (mean true RMST, months), ``normalized_policy_value``, ``regret`` (oracle − value),
        ``n_planted``, ``planted_top1_share`` (NaN without planted patients), and
        ``unmatched_top1`` (rank-1 regimens the oracle does not know; should be 0).
    """
    for name, df, cols in (("rankings", rankings, {"patient_key", "treatment", "rank"}),
                           ("oracle", oracle, {"patient_key", "treatment", "true_rmst"})):
        missing = cols - set(df.columns)
        if missing:
            raise SchemaMismatchError(f"{name} lacks column(s) {sorted(missing)}.")
    truth = oracle[["patient_key", "treatment", "true_rmst"]]
    top = rankings.loc[rankings["rank"] == 1, ["patient_key", "treatment"]]
    top = top[top["patient_key"].isin(set(truth["patient_key"]))]
    merged = top.merge(truth, on=["patient_key", "treatment"], how="left")
    unmatched = int(merged["true_rmst"].isna().sum())
    per_patient = truth[truth["patient_key"].isin(set(top["patient_key"]))].groupby(
        "patient_key")["true_rmst"].agg(["mean", "max"])
    chosen = merged.set_index("patient_key")["true_rmst"].reindex(per_patient.index)
    # A top choice the oracle does not know counts as the worst candidate, never as missing.
    worst = truth.groupby("patient_key")["true_rmst"].min().reindex(per_patient.index)
    chosen = chosen.fillna(worst)
    value, random, best = float(chosen.mean()), float(per_patient["mean"].mean()), float(
        per_patient["max"].mean())
    denom = best - random
    out = {
        "n_patients": int(len(per_patient)),
        "value": value,
        "random": random,
        "oracle": best,
        "normalized_policy_value": (value - random) / denom if denom > 0 else math.nan,
        "regret": best - value,
        "unmatched_top1": unmatched,
        "n_planted": 0,
        "planted_top1_share": math.nan,
    }
    if planted is not None and len(planted):
        p = planted[["patient_key", "treatment"]].drop_duplicates("patient_key").merge(
            top.rename(columns={"treatment": "top1"}), on="patient_key", how="inner")
        out["n_planted"] = int(len(p))
        if len(p):
            out["planted_top1_share"] = float((p["treatment"] == p["top1"]).mean())
    return out
