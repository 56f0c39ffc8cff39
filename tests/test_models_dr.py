"""The doubly robust learner (pipelines/models/doubly_robust.py) against planted truth.

The simulation (pipelines/models/simulate.py) plants biomarker-dependent treatment effects
under confounding by indication. The DR-learner's benefit comes from its own cross-fitted
nuisances and a final model in the biomarkers, so it recovers the heterogeneity even when the
outcome model cannot represent it (an S-learner without treatment × biomarker terms).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.models.design import make_target
from pipelines.models.doubly_robust import ipcw_rmst_outcome
from pipelines.models.simulate import REFERENCE, simulate_cohort
from pipelines.models.treatment import TreatmentResponseModel
from pipelines.synth.oracle import score

COLS = ["age_at_diagnosis", "ecog", "charlson_index", "stage", "egfr_mut", "kras_g12c",
        "pdl1_high"]
MODIFIERS = ["egfr_mut", "kras_g12c", "pdl1_high"]


@pytest.fixture(scope="module")
def cohorts():
    train, _, _ = simulate_cohort(3000, seed=3, key_prefix="tr")
    test, oracle, _ = simulate_cohort(600, seed=4, key_prefix="te")
    oracle = oracle.assign(standard_of_care=(oracle["treatment"] == REFERENCE).astype(int),
                           received=0, overlap=1)
    return train, test, oracle


def _fit(train, learner: str, interactions: bool, n_bootstrap: int = 0):
    return TreatmentResponseModel(
        family="coxph", learner=learner, feature_cols=COLS, modifiers=MODIFIERS,
        interactions=interactions, n_bootstrap=n_bootstrap, group_col=None,
        candidates="levels", random_state=0,
    ).fit(train, make_target(train["os_event"].astype(int), train["os_months"].astype(float)))


def _value(model, test, oracle) -> float:
    pred = model.predict_treatments(test)
    pred["rank"] = pred.groupby("patient_key")["predicted_rmst"].rank(ascending=False,
                                                                     method="first")
    return score(pred, oracle)["normalised_policy_value"]


def test_dr_recovers_effects_the_outcome_model_cannot_represent(cohorts):
    """Measured: S-learner without interactions -0.04, DR-learner on the same outcome model
    0.88 (policy value normalised between standard of care for all and the oracle)."""
    train, test, oracle = cohorts
    s_value = _value(_fit(train, "s", interactions=False), test, oracle)
    dr = _fit(train, "dr", interactions=False)
    dr_value = _value(dr, test, oracle)
    assert s_value < 0.2, s_value
    assert dr_value >= 0.75, dr_value
    # the DR benefit of osimertinib tracks the planted EGFR-dependent truth
    g = dr.dr_[""]
    assert g.standard_of_care == REFERENCE and "osimertinib" in g.arms
    truth = oracle.pivot(index="patient_key", columns="treatment", values="true_rmst")
    truth = truth.loc[test["patient_key"]]
    _, Xe = dr._prepare(test)
    est = g.effect(Xe, "osimertinib")
    true = (truth["osimertinib"] - truth[REFERENCE]).to_numpy()
    assert np.corrcoef(est, true)[0, 1] > 0.8
    assert abs(float(np.mean(est - true))) < 1.0  # months


def test_dr_draws_are_one_coherent_set_of_replicates(cohorts):
    train, test, _ = cohorts
    dr = _fit(train, "dr", interactions=True, n_bootstrap=30)
    pred1, reps1 = dr.predict_treatments(test.iloc[:100], return_replicates=True)
    pred2, reps2 = dr.predict_treatments(test.iloc[:50], return_replicates=True)
    # the first 50 patients get the same replicates whichever batch they are scored in
    n = len(pred2)
    np.testing.assert_allclose(reps1[:, :n], reps2)
    np.testing.assert_allclose(pred1["predicted_rmst"].iloc[:n], pred2["predicted_rmst"])
    # draws centre on the point estimate and the interval holds it
    osi = (pred1["treatment"] == "osimertinib").to_numpy()
    centre = np.median(reps1[:, osi], axis=0)
    assert np.median(np.abs(centre - pred1.loc[osi, "predicted_rmst"].to_numpy())) < 0.5
    assert ((pred1["rmst_lower"] <= pred1["predicted_rmst"] + 1e-9)
            & (pred1["predicted_rmst"] <= pred1["rmst_upper"] + 1e-9)).all()
    assert (pred1["predicted_rmst"].between(0, 24)).all()


def test_ipcw_outcome_weights_the_known_restricted_times():
    rng = np.random.default_rng(0)
    n = 20000
    t_event = rng.exponential(20, n)
    t_cens = rng.uniform(0, 40, n)
    time = np.minimum(t_event, t_cens)
    event = t_event <= t_cens
    y, w = ipcw_rmst_outcome(event, time, 24.0)
    assert (y <= 24.0).all()
    assert (w[~event & (time < 24)] == 0).all()  # censored before the horizon: unknown
    assert (w[event | (time >= 24)] >= 1).all()
    # IPCW is unbiased: the weighted mean of Y estimates the true RMST at 24 months
    true_rmst = 20 * (1 - np.exp(-24 / 20))
    assert float(np.sum(w * y) / n) == pytest.approx(true_rmst, rel=0.03)
    # without censoring, every weight is 1
    _, w1 = ipcw_rmst_outcome(np.ones(10, bool), np.linspace(1, 30, 10), 24.0)
    assert (w1 == 1).all()


def test_dr_is_a_learner_of_the_train_stage_config():
    m = TreatmentResponseModel(learner="dr")
    assert m._single_model
    with pytest.raises(Exception, match="'s', 't' or 'dr'"):
        TreatmentResponseModel(learner="x").fit(pd.DataFrame({"treatment": ["a"]}),
                                                make_target([1], [1.0]))
