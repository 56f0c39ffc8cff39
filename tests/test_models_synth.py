"""The models on the product's own generator (``oncorank synth``, pipelines/synth): planted
biomarker × treatment effects of ``truth/params.json`` and the oracle of
``truth/treatment_oracle.csv``.

The features here are the generator's *true* patient features (``truth/patients.csv``), so
these tests measure the models alone; the full path through ingestion, NLP and build-features
is exercised by the end-to-end demo test.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("ONCORANK_XGB_THREADS", "1")

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.models.design import make_target
from pipelines.models.evaluation import oracle_metrics
from pipelines.models.treatment import TreatmentResponseModel

PATIENTS, SEED = 2000, 11
MODIFIERS = ["egfr_sensitizing", "kras_g12c", "ras_mut", "braf_v600e", "pik3ca_mut",
             "erbb2_amp", "er_pos", "msi_h", "pdl1_high", "tmb_high", "ild", "autoimmune"]


def synth_features(out: Path) -> pd.DataFrame:
    """Model-ready rows from the generator's truth (same names as gold.patient_features
    where they exist; ``egfr_sensitizing`` = EGFR L858R or exon 19 deletion)."""
    t = pd.read_csv(out / "truth" / "patients.csv", keep_default_na=False, na_values=[""])
    drivers, flags = t["drivers"].fillna(""), t["condition_flags"].fillna("")
    mets = t["metastases"].fillna("")

    def has(s, *xs):
        return s.apply(lambda v: any(x in v.split(";") for x in xs))

    pdl1 = pd.to_numeric(t["pdl1_tps"], errors="coerce")
    tmb = pd.to_numeric(t["measured_tmb"], errors="coerce")
    return pd.DataFrame({
        "patient_key": t["patient_id"], "cancer_type": t["cancer_type"], "stage": t["stage"],
        "sex": t["sex"], "age_at_diagnosis": t["age_at_diagnosis"].astype(float),
        "ecog": t["ecog"].astype(float), "charlson_index": t["charlson_points"].astype(float),
        "smoking_status": t["smoking_status"], "tmb": tmb, "tmb_high": tmb >= 10,
        "pdl1_tps": pdl1, "pdl1_high": pdl1.ge(50).where(pdl1.notna()),
        "er_pos": (t["er_status"] == "positive").where(t["er_status"].notna()),
        "msi_h": (t["msi_status"] == "MSI-H").where(t["msi_status"].notna()),
        "erbb2_amp": t["erbb2_amplified"].astype(int).astype(bool),
        "egfr_sensitizing": has(drivers, "EGFR L858R", "EGFR exon 19 deletion"),
        "kras_g12c": has(drivers, "KRAS G12C"), "ras_mut": drivers.str.contains("KRAS|NRAS"),
        "braf_v600e": has(drivers, "BRAF V600E"), "pik3ca_mut": drivers.str.contains("PIK3CA"),
        "tp53_mut": drivers.str.contains("TP53"), "ild": has(flags, "ild"),
        "autoimmune": has(flags, "autoimmune"), "met_brain": has(mets, "brain"),
        "met_liver": has(mets, "liver"), "met_bone": has(mets, "bone"),
        "treatment": t["first_line"], "os_months": t["os_months"].astype(float),
        "os_event": t["os_event"].astype(int),
    })


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from pipelines.synth import generate_cohort

    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, patients=PATIENTS, seed=SEED)
    params = json.loads((out / "truth" / "params.json").read_text())
    oracle = pd.read_csv(out / "truth" / "treatment_oracle.csv").rename(
        columns={"patient_id": "patient_key"})[["patient_key", "treatment", "true_rmst"]]
    return synth_features(out), oracle, params


def test_recommendations_recover_most_of_the_oracle_value(cohort):
    features, oracle, params = cohort
    assert params["horizon_months"] == 24
    rng = np.random.default_rng(0)
    val = rng.random(len(features)) < 0.3
    train, test = features[~val], features[val]
    model = TreatmentResponseModel(family="coxph", modifiers=MODIFIERS, n_bootstrap=0).fit(
        train, make_target(train.os_event, train.os_months))
    got = oracle_metrics(model.predict_treatments(test), oracle)
    assert got["n_oracle_patients"] == len(test)
    assert got["normalised_policy_value"] > 0.5, got


def test_planted_effects_lie_in_the_estimated_intervals(cohort):
    """Every planted rule effect that the cohort can estimate (>= 15 marker-positive patients
    on the treatment and on its comparator) has its true HR inside the 95% Wald interval."""
    features, _, params = cohort
    model = TreatmentResponseModel(family="coxph", modifiers=MODIFIERS, n_bootstrap=0,
                                   base_params={"compute_cov": True}).fit(
        features, make_target(features.os_event, features.os_months))
    checked, missed = [], []
    for e in params["planted_effects"]:
        marker = e["biomarker"]
        if e["kind"] != "rule" or marker not in MODIFIERS:
            continue
        pos = features[marker].eq(True)
        if min((pos & (features.treatment == e["treatment"])).sum(),
               (pos & (features.treatment == e["versus"])).sum()) < 15:
            continue
        est, se = model.treatment_log_hr(e["treatment"], e["versus"], {marker: 1})
        lo, hi = np.exp(est - 1.96 * se), np.exp(est + 1.96 * se)
        checked.append(f"{e['treatment']}|{marker}")
        if not lo <= e["hr"] <= hi:
            missed.append(f"{e['treatment']}|{marker}: {e['hr']} not in ({lo:.2f}, {hi:.2f})")
    assert len(checked) >= 3, checked
    assert missed == [], missed
