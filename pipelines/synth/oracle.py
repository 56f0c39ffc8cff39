"""Score treatment rankings against a generated cohort's truth.

The generator knows every patient's true restricted mean survival time (RMST) at the horizon
under every candidate regimen (``truth/treatment_oracle.csv``), so a ranking can be judged by
what following it would have given, which no real cohort can tell:

``policy value``
    mean true RMST of the regimen ranked 1 (months); a patient with no option ranked (the
    ranking abstained) counts with the standard of care, the board's default.
``normalised policy value``
    ``(V_rank1 - V_soc) / (V_oracle - V_soc)``: 0 = standard of care for every patient,
    1 = the oracle (each patient's true best regimen). ``normalised_vs_random`` uses the
    mean over a patient's candidates (a random option) as 0 instead.
``mean regret``
    mean of (true best RMST - true RMST of rank 1), months; also among the rank-1 options
    the ranking flagged for poor overlap.
``rank-1 without overlap``
    share of rank-1 options whose true propensity is below the world's
    ``overlap_min_propensity``: regimens that patients like this one never receive.
``coverage``
    share of ranked (patient, regimen) pairs (what the report shows) whose reported RMST
    interval holds the true RMST, and
    (when the ranking reports one) whose interval on the difference vs standard of care holds
    the true difference.
``calibration``
    predicted vs true RMST under the regimen each patient received: mean bias, the slope and
    intercept of true on predicted, and the mean absolute error by fifth of predicted RMST.

Patients are matched by ``patient_key`` (the keyed HMAC of the generator's patient id).

>>> import pandas as pd
>>> oracle = pd.DataFrame({"patient_key": ["a", "a", "b", "b"], "treatment": ["s", "x"] * 2,
...     "standard_of_care": [1, 0, 1, 0], "received": [1, 0, 0, 1],
...     "true_rmst": [10.0, 14.0, 12.0, 9.0], "overlap": [1, 1, 1, 0]})
>>> ranks = pd.DataFrame({"patient_key": ["a", "a", "b", "b"], "treatment": ["s", "x"] * 2,
...     "rank": [2, 1, 1, 2], "predicted_rmst": [9.0, 13.0, 11.0, 10.0]})
>>> s = score(ranks, oracle)
>>> s["normalised_policy_value"], s["mean_regret_months"], s["rank1_without_overlap"]
(1.0, 0.0, 0.0)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.lakehouse.privacy import pseudonymise


def load_truth(cohort: Path, key: bytes) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(oracle rows, patient rows, params) of a generated cohort, keyed by ``patient_key``."""
    truth = Path(cohort) / "truth"
    oracle = pd.read_csv(truth / "treatment_oracle.csv")
    patients = pd.read_csv(truth / "patients.csv", keep_default_na=False, na_values=[""],
                           quoting=csv.QUOTE_MINIMAL)
    keys = {pid: pseudonymise(pid, key) for pid in patients["patient_id"]}
    oracle["patient_key"] = oracle["patient_id"].map(keys)
    patients["patient_key"] = patients["patient_id"].map(keys)
    params = json.loads((truth / "params.json").read_text())
    return oracle, patients, params


def _share(mask: pd.Series) -> float | None:
    return None if len(mask) == 0 else round(float(mask.mean()), 4)


def _norm(value: float, low: float, high: float) -> float | None:
    return None if abs(high - low) < 1e-12 else round(float((value - low) / (high - low)), 4)


def _bootstrap_normalised(per_patient: pd.DataFrame, n_boot: int, seed: int) -> list | None:
    if n_boot <= 0 or len(per_patient) < 10:
        return None
    rng = np.random.default_rng(seed)
    cols = per_patient[["v_rank1", "v_soc", "v_oracle"]].to_numpy()
    out = []
    for _ in range(n_boot):
        m = cols[rng.integers(0, len(cols), len(cols))].mean(axis=0)
        if m[2] - m[1] > 1e-12:
            out.append((m[0] - m[1]) / (m[2] - m[1]))
    return [round(float(q), 4) for q in np.percentile(out, [2.5, 97.5])] if out else None


def _calibration(received: pd.DataFrame) -> dict:
    if len(received) < 5:
        return {}
    pred, true = received["predicted_rmst"].to_numpy(float), received["true_rmst"].to_numpy(float)
    slope, intercept = (np.polyfit(pred, true, 1) if np.ptp(pred) > 1e-9
                        else (float("nan"), float("nan")))
    fifth = pd.qcut(pd.Series(pred).rank(method="first"), 5, labels=False)
    by_fifth = [{"fifth": int(q) + 1, "n": int((fifth == q).sum()),
                 "mean_predicted": round(float(pred[fifth == q].mean()), 3),
                 "mean_true": round(float(true[fifth == q].mean()), 3)}
                for q in sorted(fifth.unique())]
    return {"n": len(received), "mean_bias_months": round(float((pred - true).mean()), 4),
            "slope": round(float(slope), 4), "intercept": round(float(intercept), 4),
            "mae_months": round(float(np.abs(pred - true).mean()), 4), "by_fifth": by_fifth}


def score(rankings: pd.DataFrame, oracle: pd.DataFrame, n_boot: int = 0, seed: int = 0) -> dict:
    """Figures of a ranking (``patient_key, treatment, rank, predicted_rmst`` and optionally
    ``rmst_lower/upper``, ``benefit_lower/upper``, ``overlap_warning``) against the oracle
    (``patient_key, treatment, standard_of_care, received, true_rmst, overlap``)."""
    cols = ["patient_key", "treatment", "true_rmst", "standard_of_care", "received", "overlap"]
    if rankings.duplicated(["patient_key", "treatment"]).any():
        raise ValueError("rankings hold a (patient, treatment) pair twice: score one board "
                         "date at a time")
    ours = rankings.drop(columns=[c for c in cols[2:] if c in rankings])
    pairs = ours.merge(oracle[cols], on=["patient_key", "treatment"], how="inner")
    scored_keys = rankings["patient_key"].unique()
    truth = oracle[oracle["patient_key"].isin(scored_keys)]
    g = truth.groupby("patient_key")
    per = pd.DataFrame({
        "v_soc": g.apply(lambda d: d.loc[d["standard_of_care"] == 1, "true_rmst"].max(),
                         include_groups=False),
        "v_oracle": g["true_rmst"].max(), "v_random": g["true_rmst"].mean()})
    first = pairs[pairs["rank"] == 1].drop_duplicates("patient_key").set_index("patient_key")
    per = per.join(first[["true_rmst", "overlap"] + (
        ["overlap_warning"] if "overlap_warning" in first else [])], how="left")
    # A patient the ranking abstains on (no option ranked) gets the standard of care: the
    # board's default when the model has nothing to say, so abstaining is scored, not dropped.
    abstained = per["true_rmst"].isna()
    per["true_rmst"] = per["true_rmst"].fillna(per["v_soc"])
    per = per.rename(columns={"true_rmst": "v_rank1"})
    regret = per["v_oracle"] - per["v_rank1"]
    v = per[["v_rank1", "v_soc", "v_oracle", "v_random"]].mean()
    out = {
        "patients_ranked": int((~abstained).sum()),
        "patients_abstained": int(abstained.sum()),
        "patients_in_truth": int(oracle["patient_key"].nunique()),
        "policy_value_months": round(float(v["v_rank1"]), 4),
        "soc_value_months": round(float(v["v_soc"]), 4),
        "oracle_value_months": round(float(v["v_oracle"]), 4),
        "random_value_months": round(float(v["v_random"]), 4),
        "normalised_policy_value": _norm(v["v_rank1"], v["v_soc"], v["v_oracle"]),
        "normalised_policy_value_ci": _bootstrap_normalised(per, n_boot, seed),
        "normalised_vs_random": _norm(v["v_rank1"], v["v_random"], v["v_oracle"]),
        "mean_regret_months": round(float(regret.mean()), 4) if len(per) else None,
        "rank1_without_overlap": _share(per.loc[~abstained, "overlap"] == 0),
        "rank1_is_soc": _share(first.join(per[[]], how="inner")["standard_of_care"] == 1),
    }
    if "rank_status" in pairs:
        out["pairs_not_ranked"] = _share(pairs["rank"].isna())
        out["pairs_not_ranked_without_overlap"] = _share(
            pairs.loc[pairs["rank"].isna(), "overlap"] == 0)
        out["pairs_ranked_without_overlap"] = _share(
            pairs.loc[pairs["rank"].notna(), "overlap"] == 0)
    if "overlap_warning" in per:
        flagged = per.loc[~abstained, "overlap_warning"].eq(True)
        out["rank1_flagged_poor_overlap"] = _share(flagged)
        out["mean_regret_flagged_months"] = (
            round(float(regret.loc[flagged.index[flagged]].mean()), 4) if flagged.any()
            else None)
    for name, lo, hi, target in (("rmst", "rmst_lower", "rmst_upper", "true_rmst"),
                                 ("difference", "benefit_lower", "benefit_upper", "true_diff")):
        if {lo, hi} <= set(pairs.columns):
            p = pairs[pairs["rank"].notna()]  # what the report shows: the ranked options
            if target == "true_diff":
                soc = pairs[pairs["standard_of_care"] == 1].set_index("patient_key")["true_rmst"]
                p = p.assign(true_diff=p["true_rmst"] - p["patient_key"].map(soc))
                p = p[p["standard_of_care"] == 0]
            ok = p[lo].notna() & p[hi].notna()
            inside = (p.loc[ok, lo] - 1e-9 <= p.loc[ok, target]) & (
                p.loc[ok, target] <= p.loc[ok, hi] + 1e-9)
            out[f"coverage_{name}"] = _share(inside)
            out[f"interval_width_{name}_months"] = (
                round(float((p.loc[ok, hi] - p.loc[ok, lo]).mean()), 4) if ok.any() else None)
            out[f"pairs_with_{name}_interval"] = int(ok.sum())
        else:
            out[f"coverage_{name}"] = None
    out["calibration_received"] = _calibration(pairs[pairs["received"] == 1])
    return out
