"""Ranking audit: what the engine recommends first, for whom, and how that compares with
what patients actually received (pandas in, pandas out).

>>> import pandas as pd
>>> r = pd.DataFrame({"patient_key": ["a", "a", "b", "b"], "treatment": ["x", "y", "x", "y"],
...                   "rank": [1, 2, 2, 1]})
>>> g = pd.DataFrame({"patient_key": ["a", "b"], "treatment": ["x", "x"],
...                   "cancer_type": ["NSCLC", "NSCLC"]})
>>> agreement(top_choices(r), g)["agrees"].tolist()
[True, False]
"""

from __future__ import annotations

import pandas as pd


def latest_board(rankings: pd.DataFrame) -> pd.DataFrame:
    """The rankings of the most recent board date (all rows when there is no board_date)."""
    if "board_date" not in rankings or rankings["board_date"].isna().all():
        return rankings
    return rankings[rankings["board_date"] == rankings["board_date"].max()]


def top_choices(rankings: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the rank-1 treatment (ties: the first by name)."""
    first = rankings[rankings["rank"] == 1].sort_values(["patient_key", "treatment"])
    dup = first["patient_key"].duplicated()
    if dup.any():
        print(f"note: {int(dup.sum())} patients have tied rank-1 options; the first by name "
              "is counted.")
    return first[~dup].rename(columns={"treatment": "top_treatment"})


def top_choice_share(top: pd.DataFrame, features: pd.DataFrame, by: str) -> pd.DataFrame:
    """How often each treatment ranks first, within each level of ``by``."""
    data = top[["patient_key", "top_treatment"]].merge(features[["patient_key", by]],
                                                       on="patient_key", how="inner")
    counts = (data.groupby([by, "top_treatment"], dropna=False).size()
              .rename("patients").reset_index())
    counts["share"] = counts["patients"] / counts.groupby(by, dropna=False)[
        "patients"].transform("sum")
    return counts.sort_values([by, "patients"], ascending=[True, False]).reset_index(drop=True)


def agreement(top: pd.DataFrame, given: pd.DataFrame) -> pd.DataFrame:
    """Per patient: top-ranked vs received treatment (``given`` has patient_key, treatment)."""
    data = top[["patient_key", "top_treatment"]].merge(
        given.rename(columns={"treatment": "given_treatment"}), on="patient_key", how="inner")
    data = data[data["given_treatment"].notna()]
    data["agrees"] = data["top_treatment"] == data["given_treatment"]
    return data.reset_index(drop=True)


def agreement_rate(agree: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Share of patients whose received treatment was the one ranked first."""
    if by is None:
        return pd.DataFrame({"patients": [len(agree)], "agree": [int(agree["agrees"].sum())],
                             "rate": [float(agree["agrees"].mean()) if len(agree) else
                                      float("nan")]})
    out = agree.groupby(by, dropna=False)["agrees"].agg(["size", "sum", "mean"]).reset_index()
    return out.rename(columns={"size": "patients", "sum": "agree", "mean": "rate"})


def contradictions(top: pd.DataFrame, features: pd.DataFrame, actionable: pd.DataFrame | None,
                   catalog) -> pd.DataFrame:
    """Rank-1 options that contradict what is known of the patient: a targeted regimen whose
    label requires a biomarker the features say is absent (the regimen catalog's ``label``),
    or a regimen the patient's tumour carries level-A, on-label resistance evidence against.

    Output: ``patient_key, top_treatment, reason`` (one row per contradiction). What the
    ranking rule should make impossible, counted the way a reviewer would count it.
    """
    labels = {r.name: r.label for r in catalog.regimens if r.label}
    feats = features.set_index("patient_key")
    rows = []
    for key, treatment in zip(top["patient_key"], top["top_treatment"], strict=True):
        label = labels.get(treatment)
        if label is None or key not in feats.index:
            continue
        f = feats.loc[key]
        for q in label.requires:
            have = f.get(q.feature) if q.feature in feats.columns else None
            if have is not None and not pd.isna(have) and bool(have) != q.value:
                rows.append((key, treatment, f"label requirement not met: {q.unmet}"))
    if actionable is not None and len(actionable):
        res = actionable[(actionable["direction"] == "resistance")
                         & (actionable["evidence_level"] == "A")
                         & (actionable["on_label"].fillna(False).astype(bool))]
        against: dict[str, set[str]] = {}
        for key, regimens, regimen in zip(res["patient_key"], res["regimens"], res["regimen"],
                                          strict=True):
            names = set() if regimens is None else {str(x) for x in regimens}
            if isinstance(regimen, str):
                names.add(regimen)
            against.setdefault(key, set()).update(names)
        for key, treatment in zip(top["patient_key"], top["top_treatment"], strict=True):
            if treatment in against.get(key, set()):
                rows.append((key, treatment, "level-A resistance marker present"))
    return pd.DataFrame(rows, columns=["patient_key", "top_treatment", "reason"])
