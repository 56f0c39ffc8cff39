"""A small tabular cohort with *known* treatment effects, for accuracy tests and benchmarks.

This is not the product's raw-data generator (``oncorank synth`` writes VCFs, FHIR and notes);
it writes the model-ready table directly — the shape of ``gold.patient_features`` for
first-line NSCLC — so that the models can be checked against a planted truth without the rest
of the pipeline in the loop.

Outcome model (Weibull proportional hazards, Bender et al., Stat Med 2005;24:1713-1723):
S(t | x, a) = exp(-lambda * t^k * exp(eta(x, a))), with

* prognostic terms: age (per year), ECOG, Charlson index, stage IV;
* treatment effects that depend on biomarkers (hazard ratios vs platinum–pemetrexed, close to
  the first-line trials): osimertinib 0.45 if EGFR-mutant (FLAURA-like) else 1.30;
  pembrolizumab 0.60 if PD-L1 >= 50% (KEYNOTE-024-like) else 0.95; sotorasib 0.60 if KRAS G12C
  else 1.20.
* Confounding by indication: the treatment given depends on the biomarkers and ECOG through a
  multinomial logit with some off-guideline choices, so that every arm has overlap.
* Censoring: administrative (uniform entry over 24–60 months of follow-up) plus loss to
  follow-up (exponential).

The oracle is the true restricted mean survival time at the horizon under every candidate.

>>> df, oracle, truth = simulate_cohort(200, seed=1)
>>> sorted(oracle["treatment"].unique())[:2], truth["planted_hr"]["osimertinib|egfr_mut"]
(['osimertinib', 'pembrolizumab'], 0.45)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TREATMENTS = ("platinum_pemetrexed", "pembrolizumab", "osimertinib", "sotorasib")
REFERENCE = "platinum_pemetrexed"
WEIBULL_SHAPE = 1.3
# Baseline scale: median OS ~ 13 months on chemotherapy for a 65-year-old, ECOG 0, stage III.
WEIBULL_LAMBDA = np.log(2) / 13.0 ** WEIBULL_SHAPE

PLANTED_HR = {
    "osimertinib|egfr_mut": 0.45, "osimertinib|wild_type": 1.30,
    "pembrolizumab|pdl1_high": 0.60, "pembrolizumab|pdl1_low": 0.95,
    "sotorasib|kras_g12c": 0.60, "sotorasib|wild_type": 1.20,
}
PROGNOSTIC = {"age_per_year": 0.03, "ecog": 0.35, "charlson_index": 0.10, "stage_iv": 0.30}


def treatment_log_hr(treatment: np.ndarray, egfr, pdl1_high, kras) -> np.ndarray:
    """True log hazard ratio of ``treatment`` vs platinum–pemetrexed for each patient."""
    t = np.asarray(treatment)
    out = np.zeros(len(t))
    out = np.where(t == "osimertinib", np.log(np.where(egfr, 0.45, 1.30)), out)
    out = np.where(t == "pembrolizumab", np.log(np.where(pdl1_high, 0.60, 0.95)), out)
    out = np.where(t == "sotorasib", np.log(np.where(kras, 0.60, 1.20)), out)
    return out


def simulate_cohort(n: int, seed: int = 0, horizon: float = 24.0, key_prefix: str = "sim",
                    with_oracle: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(features, oracle, truth): a first-line NSCLC cohort of ``n`` patients.

    ``features`` has the ``gold.patient_features`` columns the models use (patient_key,
    cancer_type, sex, age_at_diagnosis, stage, ecog, charlson_index, egfr_mut, kras_g12c,
    pdl1_tps, pdl1_high, tmb, treatment, os_months, os_event); ``oracle`` has patient_key,
    treatment, true_rmst (empty when ``with_oracle`` is false, for large benchmark cohorts);
    ``truth`` holds the planted effects.
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(65, 9, n), 30, 90).round()
    sex = rng.choice(["F", "M"], n)
    ecog = rng.choice([0, 1, 2], n, p=[0.40, 0.45, 0.15])
    stage = rng.choice(["III", "IV"], n, p=[0.3, 0.7])
    charlson = rng.poisson(1.0, n)
    driver = rng.choice(["egfr", "kras", "none"], n, p=[0.22, 0.13, 0.65])
    egfr = driver == "egfr"
    kras = driver == "kras"
    pdl1 = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(1, 100, n)).round()
    pdl1_high = pdl1 >= 50
    tmb = np.exp(rng.normal(1.8, 0.8, n)).round(1)

    # Confounding by indication: guideline-driven choices plus off-guideline noise.
    logits = np.column_stack([
        np.zeros(n),
        -0.8 + 1.8 * pdl1_high - 0.4 * ecog - 1.0 * egfr,
        -2.2 + 3.6 * egfr,
        -2.6 + 3.0 * kras,
    ])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    treatment = np.array(TREATMENTS)[(u > p.cumsum(axis=1)).sum(axis=1)]

    prognosis = (PROGNOSTIC["age_per_year"] * (age - 65) + PROGNOSTIC["ecog"] * ecog
                 + PROGNOSTIC["charlson_index"] * charlson
                 + PROGNOSTIC["stage_iv"] * (stage == "IV"))
    eta = prognosis + treatment_log_hr(treatment, egfr, pdl1_high, kras)
    t_event = (-np.log(rng.random(n)) / (WEIBULL_LAMBDA * np.exp(eta))) ** (1 / WEIBULL_SHAPE)
    t_admin = rng.uniform(24, 60, n)
    t_loss = rng.exponential(1 / 0.008, n)
    t_cens = np.minimum(t_admin, t_loss)
    os_months = np.minimum(t_event, t_cens).round(3)
    os_event = (t_event <= t_cens).astype(int)

    keys = np.array([f"{key_prefix}{i:07d}" for i in range(n)])
    features = pd.DataFrame({
        "patient_key": keys, "cancer_type": "NSCLC", "sex": sex, "age_at_diagnosis": age,
        "stage": stage, "ecog": ecog.astype(float), "charlson_index": charlson.astype(float),
        "egfr_mut": egfr, "kras_g12c": kras, "pdl1_tps": pdl1, "pdl1_high": pdl1_high,
        "tmb": tmb, "treatment": treatment, "os_months": os_months, "os_event": os_event,
    })
    grid = np.linspace(0, horizon, 481)
    oracle = []
    for t in TREATMENTS if with_oracle else ():
        e = prognosis + treatment_log_hr(np.full(n, t), egfr, pdl1_high, kras)
        s = np.exp(-WEIBULL_LAMBDA * np.outer(np.exp(e), grid ** WEIBULL_SHAPE))
        rmst = np.trapezoid(s, grid, axis=1)
        oracle.append(pd.DataFrame({"patient_key": keys, "treatment": t, "true_rmst": rmst}))
    truth = {"seed": seed, "horizon_months": horizon, "planted_hr": dict(PLANTED_HR),
             "prognostic_log_hr": dict(PROGNOSTIC), "weibull_shape": WEIBULL_SHAPE,
             "reference": REFERENCE}
    oracle_df = pd.concat(oracle, ignore_index=True) if oracle else pd.DataFrame(
        {"patient_key": pd.Series(dtype=str), "treatment": pd.Series(dtype=str),
         "true_rmst": pd.Series(dtype=float)})
    return features, oracle_df, truth
