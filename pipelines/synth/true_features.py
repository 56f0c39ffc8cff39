"""The generator's true patient features, in the names of ``gold.patient_features``.

Used to measure what the feature pipeline loses: the same model is fitted once on the
pipeline's features and once on a copy whose columns are replaced by the truth, group by
group (:data:`GROUPS`). Nothing in the product's stages reads this module.

>>> sorted(GROUPS)[:3]
['biomarkers', 'comorbidities', 'demographics']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Contraindication flags of silver.comorbidities (ci_<rule>) and the generator's condition
# flags they stand for.
# Flags without a generator condition (prior severe irAE, transplant) are truly false before
# the index date.
CI_FLAGS = {"ci_renal": "ckd", "ci_chf": "chf", "ci_ild": "ild", "ci_autoimmune": "autoimmune",
            "ci_hepatic": "liver_disease", "ci_prior_severe_irae": None, "ci_transplant": None}

# Feature groups whose true values can replace the pipeline's (attribution of lost value).
GROUPS: dict[str, tuple[str, ...]] = {
    "biomarkers": ("egfr_l858r", "egfr_ex19del", "egfr_mut", "kras_g12c", "kras_mut",
                   "nras_mut", "braf_v600e", "pik3ca_mut", "erbb2_amp", "tp53_mut", "msi_h",
                   "er_pos", "tmb", "tmb_high", "pdl1_tps", "pdl1_high"),
    "stage": ("stage", "stage_num"),
    "ecog": ("ecog",),
    "comorbidities": ("charlson_index", *CI_FLAGS),
    "metastases": ("met_brain", "met_liver", "met_bone"),
    "smoking": ("smoking_status",),
    "demographics": ("age_at_diagnosis", "sex"),
    "treatment_and_outcome": ("treatment", "os_months", "os_event"),
}


def _has(series: pd.Series, *names: str) -> pd.Series:
    return series.fillna("").apply(lambda v: any(x in v.split(";") for x in names))


def _gene(series: pd.Series, gene: str) -> pd.Series:
    return series.fillna("").apply(lambda v: any(d.startswith(gene + " ") for d in v.split(";")))


def truth_frame(patients: pd.DataFrame) -> pd.DataFrame:
    """Per ``patient_key``, the true value of every column of :data:`GROUPS`.

    ``patients`` is ``truth/patients.csv`` with a ``patient_key`` column
    (:func:`pipelines.synth.oracle.load_truth`). TMB is the generator's measured TMB (PASS
    calls / target Mb), as a perfect VCF stage would compute it; PD-L1, ER and MSI are null
    where the generator has no value (other cancer types).
    """
    t = patients
    drivers, flags, mets = t["drivers"], t["condition_flags"], t["metastases"]
    pdl1 = pd.to_numeric(t["pdl1_tps"], errors="coerce")
    tmb = pd.to_numeric(t["measured_tmb"], errors="coerce")
    stage_num = t["stage"].map({"I": 1.0, "II": 2.0, "III": 3.0, "IV": 4.0})
    out = pd.DataFrame({
        "patient_key": t["patient_key"],
        "egfr_l858r": _has(drivers, "EGFR L858R"),
        "egfr_ex19del": _has(drivers, "EGFR exon 19 deletion"),
        "egfr_mut": _gene(drivers, "EGFR"), "kras_g12c": _has(drivers, "KRAS G12C"),
        "kras_mut": _gene(drivers, "KRAS"), "nras_mut": _gene(drivers, "NRAS"),
        "braf_v600e": _has(drivers, "BRAF V600E"), "pik3ca_mut": _gene(drivers, "PIK3CA"),
        "erbb2_amp": t["erbb2_amplified"].astype(int).astype(bool),
        "tp53_mut": _gene(drivers, "TP53"),
        "msi_h": (t["msi_status"] == "MSI-H").where(t["msi_status"].notna()),
        "er_pos": (t["er_status"] == "positive").where(t["er_status"].notna()),
        "tmb": tmb, "tmb_high": tmb >= 10.0,
        "pdl1_tps": pdl1, "pdl1_high": pdl1.ge(50).where(pdl1.notna()),
        "stage": t["stage"], "stage_num": stage_num, "ecog": t["ecog"].astype(float),
        "charlson_index": t["charlson_points"].astype(float),
        "met_brain": _has(mets, "brain"), "met_liver": _has(mets, "liver"),
        "met_bone": _has(mets, "bone"), "smoking_status": t["smoking_status"],
        "age_at_diagnosis": t["age_at_diagnosis"].astype(float), "sex": t["sex"],
        "treatment": t["first_line"], "os_months": t["os_months"].astype(float),
        "os_event": t["os_event"].astype(int),
    })
    for col, flag in CI_FLAGS.items():
        out[col] = _has(flags, flag) if flag else False
    return out


def with_truth(features: pd.DataFrame, truth: pd.DataFrame, groups) -> pd.DataFrame:
    """``features`` with the columns of ``groups`` replaced by ``truth`` (matched on
    ``patient_key``); a column the features lack is added, so the model sees the truth."""
    out = features.copy()
    t = truth.set_index("patient_key").reindex(out["patient_key"])
    for g in groups:
        for col in GROUPS[g]:
            if col not in t:
                continue
            values = t[col].to_numpy()
            if col in out and out[col].dtype == bool and pd.isna(values).any():
                out[col] = out[col].astype(object)
            out[col] = values
    if "os_months" in out:
        out["os_months"] = np.maximum(pd.to_numeric(out["os_months"]), 0.0)
    return out
