"""Has the scored population moved away from the one the model learned from?

For every feature the champion was trained on, compare its distribution in the scored cohort
with the training cohort:

* **PSI** (population stability index), Σ (a − e) · ln(a / e) over bins, where e and a are the
  training and scored shares of a bin. Numeric features are cut at the training deciles (plus a
  bin for missing values); binary, low-cardinality and text features use their levels. Empty
  bins get a share of ``EPS`` so the index stays finite. Rule of thumb (Siddiqi, *Credit Risk
  Scorecards*, 2006): < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
* **KS**: the two-sample Kolmogorov-Smirnov statistic and p-value (``scipy.stats.ks_2samp``) for
  numeric features with more than ``MAX_LEVELS`` distinct values.

A feature is flagged ``drifted`` when PSI ≥ ``psi_threshold`` (default 0.25) and the scored
cohort has at least ``min_n`` patients (PSI of a dozen patients is mostly noise), or when the KS
p-value is below ``ks_alpha`` divided by the number of KS tests (Bonferroni, so that fifty
stable features do not raise a false alarm half of the time).

>>> import pandas as pd
>>> train = pd.DataFrame({"age": range(20, 80), "sex": ["F", "M"] * 30})
>>> same = feature_drift(train, train)
>>> bool(same["drifted"].any()), float(same["psi"].max())
(False, 0.0)
>>> older = feature_drift(train, pd.DataFrame({"age": range(60, 120), "sex": ["F", "M"] * 30}))
>>> bool(older.set_index("feature").loc["age", "drifted"])
True
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

EPS = 1e-4
MAX_LEVELS = 10
N_BINS = 10
MISSING = "(missing)"

# Columns of gold.patient_features that identify a row or are outcomes, not model inputs.
NOT_FEATURES = {"patient_key", "index_date", "treatment", "os_months", "os_event",
                "ttnt_months", "ttnt_event", "source"}


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each sums to 1)."""
    e = np.maximum(np.asarray(expected, dtype=float), EPS)
    a = np.maximum(np.asarray(actual, dtype=float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(codes: pd.Series, levels: list) -> np.ndarray:
    counts = codes.value_counts()
    total = max(len(codes), 1)
    return np.array([counts.get(lv, 0) / total for lv in levels], dtype=float)


def categorical_psi(train: pd.Series, scored: pd.Series) -> float:
    t = train.astype("object").where(train.notna(), MISSING).astype(str)
    s = scored.astype("object").where(scored.notna(), MISSING).astype(str)
    levels = sorted(set(t) | set(s))
    return psi_from_shares(_shares(t, levels), _shares(s, levels))


def numeric_psi(train: pd.Series, scored: pd.Series, n_bins: int = N_BINS) -> float:
    t = pd.to_numeric(train, errors="coerce")
    s = pd.to_numeric(scored, errors="coerce")
    edges = np.unique(np.nanquantile(t.to_numpy(dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1])) \
        if t.notna().any() else np.array([])

    def bins(x: pd.Series) -> pd.Series:
        out = pd.Series(np.searchsorted(edges, x.to_numpy(dtype=float), side="right"),
                        index=x.index).astype(str)
        return out.where(x.notna(), MISSING)

    tb, sb = bins(t), bins(s)
    levels = sorted(set(tb) | set(sb))
    return psi_from_shares(_shares(tb, levels), _shares(sb, levels))


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def drift_features(training: pd.DataFrame, scored: pd.DataFrame) -> list[str]:
    """Features present in both frames, minus identifiers, outcomes and date columns."""
    out = []
    for c in training.columns:
        if c in NOT_FEATURES or c not in scored.columns:
            continue
        if pd.api.types.is_datetime64_any_dtype(training[c]):
            continue
        out.append(c)
    return out


def feature_drift(
    training: pd.DataFrame,
    scored: pd.DataFrame,
    features: list[str] | None = None,
    *,
    psi_threshold: float = 0.25,
    ks_alpha: float = 0.05,
    min_n: int = 30,
) -> pd.DataFrame:
    """One row per feature: ``feature, kind, psi, ks_stat, ks_pvalue, n_training, n_scored,
    drifted`` (see the module docstring for the rule)."""
    features = features if features is not None else drift_features(training, scored)
    rows = []
    for f in features:
        t, s = training[f], scored[f]
        numeric = _is_numeric(t) and t.nunique(dropna=True) > MAX_LEVELS
        if numeric:
            psi = numeric_psi(t, s)
            tv = pd.to_numeric(t, errors="coerce").dropna()
            sv = pd.to_numeric(s, errors="coerce").dropna()
            if len(tv) and len(sv):
                res = stats.ks_2samp(tv.to_numpy(dtype=float), sv.to_numpy(dtype=float))
                ks_stat, ks_p = float(res.statistic), float(res.pvalue)
            else:
                ks_stat = ks_p = math.nan
        else:
            psi = categorical_psi(t, s)
            ks_stat = ks_p = math.nan
        rows.append({"feature": f, "kind": "numeric" if numeric else "categorical",
                     "psi": psi, "ks_stat": ks_stat, "ks_pvalue": ks_p,
                     "n_training": int(len(t)), "n_scored": int(len(s))})
    out = pd.DataFrame(rows, columns=["feature", "kind", "psi", "ks_stat", "ks_pvalue",
                                      "n_training", "n_scored"])
    n_ks = int(out["ks_pvalue"].notna().sum())
    ks_flag = out["ks_pvalue"].notna() & (out["ks_pvalue"] < ks_alpha / max(n_ks, 1))
    psi_flag = (out["psi"] >= psi_threshold) & (out["n_scored"] >= min_n)
    out["drifted"] = (ks_flag | psi_flag).astype(bool)
    out["ks_stat"] = out["ks_stat"].astype(float)
    out["ks_pvalue"] = out["ks_pvalue"].astype(float)
    return out
