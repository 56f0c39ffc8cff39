"""Cohort summaries for the cohort-overview notebook (pandas in, pandas out).

>>> import pandas as pd
>>> f = pd.DataFrame({"cancer_type": ["NSCLC", "NSCLC", "BRCA"],
...                   "egfr_mut": [True, None, False]})
>>> biomarker_prevalence(f, ["egfr_mut"]).to_dict("records")[0]["prevalence"]
0.5
"""

from __future__ import annotations

import pandas as pd


def biomarker_flags(columns) -> list[str]:
    """Biomarker flag columns of gold.patient_features, in the feature dictionary's order."""
    from pipelines.features.dictionary import dictionary

    present = set(columns)
    flags = [c["name"] for c in dictionary()["columns"]
             if c.get("type") == "boolean" and "<" not in c["name"]
             and ("biomarkers" in str(c.get("source")) or c["name"] == "pdl1_high")]
    return [f for f in flags if f in present]


def biomarker_prevalence(features: pd.DataFrame, flags: list[str],
                         by: str | None = None) -> pd.DataFrame:
    """Per flag (and group): patients tested, positives, prevalence among the tested.

    A null flag means "not known" (not sequenced, nothing in the notes), so prevalence is
    positives / known, never positives / all patients.
    """
    groups = features.groupby(by, dropna=False, observed=True) if by else [(None, features)]
    rows = []
    for level, part in groups:
        for flag in flags:
            known = part[flag].dropna().astype(bool)
            row = {"biomarker": flag, "patients": len(part), "known": int(known.size),
                   "positive": int(known.sum()),
                   "prevalence": float(known.mean()) if known.size else float("nan")}
            if by:
                row = {by: level, **row}
            rows.append(row)
    return pd.DataFrame(rows)


def reconciliation(job_runs: pd.DataFrame) -> pd.DataFrame:
    """Latest run of each job with its counts and whether they reconcile.

    rows in = rows written + rows quarantined is the pipeline's "nothing lost" rule.
    """
    if job_runs.empty:
        return job_runs.assign(reconciled=pd.Series(dtype=bool))
    latest = (job_runs.sort_values("started_at")
              .groupby("job", as_index=False).tail(1).sort_values("started_at"))
    cols = ["job", "started_at", "status", "rows_in", "rows_written", "rows_quarantined"]
    out = latest[cols].copy()
    out["reconciled"] = out["rows_in"] == out["rows_written"] + out["rows_quarantined"]
    return out.reset_index(drop=True)
