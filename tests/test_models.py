"""Survival estimators, the treatment-response model and its evaluation, without Spark.

Planted truth comes from ``pipelines.models.simulate`` (Weibull PH, biomarker × treatment
hazard ratios, confounded treatment choice); the checks compare estimates with that truth.
"""

from __future__ import annotations

import os
import pickle

os.environ.setdefault("ONCORANK_XGB_THREADS", "1")  # shared CI boxes: see estimators.py

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pipelines.models.design import (
    FeatureEncoder,
    kaplan_meier,
    make_target,
    rmst_from_curves,
    time_grid,
)
from pipelines.models.estimators import FAMILIES, Breslow, CoxPH, make_estimator
from pipelines.models.metrics import (
    age_band,
    evaluate,
    oracle_metrics,
    policy_value,
    recommendations,
)
from pipelines.models.simulate import REFERENCE, WEIBULL_LAMBDA, WEIBULL_SHAPE, simulate_cohort
from pipelines.models.treatment import PREDICTION_COLUMNS, TreatmentResponseModel

MODIFIERS = ["egfr_mut", "kras_g12c", "pdl1_high"]


@pytest.fixture(scope="module")
def cohort():
    features, oracle, truth = simulate_cohort(2400, seed=11)
    return features, oracle, truth


@pytest.fixture(scope="module")
def split(cohort):
    features, oracle, truth = cohort
    rng = np.random.default_rng(0)
    val = rng.random(len(features)) < 0.3
    train, test = features[~val].reset_index(drop=True), features[val].reset_index(drop=True)
    return (train, make_target(train.os_event, train.os_months), test,
            make_target(test.os_event, test.os_months))


@pytest.fixture(scope="module")
def cox_s(split):
    train, y_tr, _, _ = split
    return TreatmentResponseModel(family="coxph", modifiers=MODIFIERS, n_bootstrap=20,
                                  base_params={"compute_cov": True}).fit(train, y_tr)


# ------------------------------------------------------------------------------ design
def test_encoder_imputes_and_one_hot_encodes_with_a_reference_level():
    df = pd.DataFrame({"age": [50.0, np.nan, 70.0], "flag": [True, None, False],
                       "stage": ["I", "II", None], "mrn": ["a", "b", "c"]})
    enc = FeatureEncoder(max_levels=2).fit(df)
    assert enc.feature_names_ == ["age", "age_missing", "flag", "flag_missing", "stage=II"]
    assert enc.dropped_ == ["mrn"]  # identifier-like text is not a feature
    got = enc.transform(pd.DataFrame({"age": [np.nan], "flag": [None], "stage": ["II"],
                                      "mrn": ["z"]}))
    assert got.tolist() == [[60.0, 1.0, 0.5, 1.0, 1.0]]


def test_kaplan_meier_and_rmst_match_hand_computation():
    t, s = kaplan_meier(np.array([1, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 3.0]))
    assert t.tolist() == [1.0, 2.0, 3.0] and np.allclose(s, [0.75, 0.75, 0.0])
    grid = time_grid(4.0, (2.0,), n=5)
    assert {2.0, 4.0} <= set(grid.tolist())
    # S = 1 until 2, then 0.5: RMST(4) = 2 + 0.5 * 2
    surv = np.where(grid < 2, 1.0, 0.5)
    assert rmst_from_curves(grid, surv, 4.0) == pytest.approx(3.0)


# ------------------------------------------------------------------------------ estimators
def test_breslow_matches_scikit_survival_cox_curves():
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    t = rng.exponential(np.exp(-X @ [0.5, -0.3, 0.0]))
    y = make_target(t < 1.5, np.minimum(t, 1.5))
    ref = CoxPHSurvivalAnalysis(alpha=1e-2).fit(X, y)
    ours = Breslow().fit(X @ ref.coef_, y["event"], y["time"])
    times = np.array([0.1, 0.5, 1.0, 1.4])
    want = np.vstack([f(times) for f in ref.predict_survival_function(X[:5])])
    assert np.allclose(ours.survival(X[:5] @ ref.coef_, times), want, atol=1e-10)


@pytest.mark.parametrize("family", ["coxph", "rsf", "gbsa", "xgb_cox", "xgb_aft"])
def test_every_family_follows_one_interface(family, cohort):
    features, _, _ = cohort
    X = features[["age_at_diagnosis", "ecog", "charlson_index"]].to_numpy(float)[:600]
    y = make_target(features.os_event[:600], features.os_months[:600])
    small = {"rsf": {"n_estimators": 20}, "gbsa": {"n_estimators": 30},
             "xgb_cox": {"n_estimators": 30}, "xgb_aft": {"n_estimators": 30}}.get(family, {})
    est = make_estimator(family, **small)
    assert clone(est).get_params() == est.get_params()  # sklearn contract
    est.fit(X, y)
    times = np.array([0.0, 6.0, 12.0, 24.0])
    s = est.predict_survival(X[:50], times)
    assert s.shape == (50, 4) and np.all(s[:, 0] == 1.0)
    assert np.all(np.diff(s, axis=1) <= 1e-9), "survival curves must not increase"
    # ECOG and age raise the planted hazard: the risk score must order patients accordingly
    assert est.score(X, y) > 0.58
    restored = pickle.loads(pickle.dumps(est))
    assert np.allclose(restored.predict_survival(X[:5], times), s[:5])


def test_unknown_family_and_forced_cuda_without_gpu_are_clear_errors(monkeypatch):
    from pipelines.lakehouse.errors import ConfigError
    from pipelines.models import device

    with pytest.raises(ConfigError, match="Unknown model family 'svm'"):
        make_estimator("svm")
    monkeypatch.setattr(device, "gpu_available", lambda: False)
    monkeypatch.delenv("ONCORANK_DEVICE", raising=False)
    assert device.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no usable NVIDIA GPU"):
        device.resolve_device("cuda")
    assert set(FAMILIES) >= {"coxph", "rsf", "xgb_cox", "xgb_aft", "xgb_spark_cox"}


def test_cox_recovers_a_planted_hazard_ratio_with_a_valid_wald_interval():
    rng = np.random.default_rng(7)
    n = 4000
    x = rng.normal(size=(n, 2))
    a = rng.random(n) < 0.5
    t = (-np.log(rng.random(n)) / (0.05 * np.exp(0.4 * x[:, 0] + np.log(0.6) * a))) ** (1 / 1.3)
    c = rng.uniform(5, 30, n)
    y = make_target(t <= c, np.minimum(t, c))
    m = CoxPH(alpha=1e-4, compute_cov=True).fit(np.column_stack([x, a]), y)
    est, se = m.coef_[2], np.sqrt(m.cov_[2, 2])
    assert abs(est - np.log(0.6)) < 1.96 * se
    assert 0.01 < se < 0.06


# ------------------------------------------------------------------------------ treatment
def test_planted_biomarker_by_treatment_hazard_ratios_are_recovered(cox_s, cohort):
    """Each planted HR (vs platinum–pemetrexed, within the biomarker group) lies inside the
    95% Wald interval of the Cox S-learner's estimate."""
    _, _, truth = cohort
    planted = truth["planted_hr"]
    checks = [
        ("osimertinib", {"egfr_mut": 1}, planted["osimertinib|egfr_mut"]),
        ("osimertinib", {"egfr_mut": 0}, planted["osimertinib|wild_type"]),
        ("pembrolizumab", {"pdl1_high": 1}, planted["pembrolizumab|pdl1_high"]),
        ("pembrolizumab", {"pdl1_high": 0}, planted["pembrolizumab|pdl1_low"]),
        ("sotorasib", {"kras_g12c": 1}, planted["sotorasib|kras_g12c"]),
    ]
    for treatment, at, hr in checks:
        est, se = cox_s.treatment_log_hr(treatment, REFERENCE, at)
        lo, hi = np.exp(est - 1.96 * se), np.exp(est + 1.96 * se)
        assert lo <= hr <= hi, f"{treatment} {at}: true HR {hr} outside ({lo:.2f}, {hi:.2f})"
    # and the effect modification itself is detected (EGFR+ on osimertinib clearly < 1)
    est, se = cox_s.treatment_log_hr("osimertinib", REFERENCE, {"egfr_mut": 1})
    assert est + 1.96 * se < 0


def test_predict_treatments_contract(cox_s, split):
    _, _, test, _ = split
    pred = cox_s.predict_treatments(test.head(40))
    assert list(pred.columns) == PREDICTION_COLUMNS
    # NSCLC: one row per catalog regimen of the patient's cancer type
    assert len(pred) == 40 * 4 and set(pred["treatment"]) == {
        "platinum_pemetrexed", "pembrolizumab", "osimertinib", "sotorasib"}
    assert (pred["rmst_lower"] <= pred["predicted_rmst"]).all()
    assert (pred["predicted_rmst"] <= pred["rmst_upper"]).all()
    assert (pred["rmst_upper"] > pred["rmst_lower"]).mean() > 0.95  # bootstrap spread
    assert pred["predicted_rmst"].between(0, 24).all()
    assert (pred["surv_24"] <= pred["surv_12"]).all()
    assert pred["surv_12"].between(0, 1).all() and pred["propensity"].between(0, 1).all()
    assert pred["overlap_warning"].dtype == bool and pred["n_similar_treated"].dtype.kind == "i"
    # the same numbers as the survival curves of one treatment
    times, s = cox_s.survival_curves(test.head(40), "osimertinib")
    rm = rmst_from_curves(times, s, 24.0)
    got = pred[pred.treatment == "osimertinib"]["predicted_rmst"].to_numpy()
    assert np.allclose(rm, got) and s.shape == (40, len(times))


def test_overlap_flag_marks_treatments_rarely_given_to_similar_patients(cox_s, split):
    _, _, test, _ = split
    pred = cox_s.predict_treatments(test).merge(test[["patient_key", "egfr_mut"]])
    osi = pred[pred.treatment == "osimertinib"]
    # osimertinib is given to EGFR-mutant patients: mostly overlap for them, rarely otherwise
    assert osi[osi.egfr_mut]["overlap_warning"].mean() < 0.1
    assert osi[osi.egfr_mut]["propensity"].median() > osi[~osi.egfr_mut]["propensity"].median()
    assert (pred.loc[pred.overlap_warning, "propensity"] < 0.05).any() or (
        pred.loc[pred.overlap_warning, "n_similar_treated"] < 5).all()


def test_unknown_cancer_type_and_unseen_treatment_are_flagged_not_extrapolated(cox_s, split):
    _, _, test, _ = split
    other = test.head(3).assign(cancer_type="MEL")
    pred = cox_s.predict_treatments(other)
    assert set(pred.treatment) == {"nivolumab_ipilimumab", "pembrolizumab_mel",
                                   "dabrafenib_trametinib", "dacarbazine"}
    assert pred["predicted_rmst"].isna().all() and pred["overlap_warning"].all()
    assert (pred["n_similar_treated"] == 0).all()


def test_explain_gives_top_features_with_signed_contributions(cox_s, split):
    _, _, test, _ = split
    egfr_pos = test[test.egfr_mut].head(5)
    ex = cox_s.explain(egfr_pos, "osimertinib", top_k=3)
    assert list(ex.columns)[:5] == ["patient_key", "treatment", "feature", "value",
                                    "contribution"]
    assert ex.groupby("patient_key").size().eq(3).all()
    # the EGFR × osimertinib interaction makes EGFR a favourable factor on osimertinib
    egfr = cox_s.explain(egfr_pos, "osimertinib", top_k=20)
    egfr = egfr[egfr.feature == "egfr_mut"]
    assert (egfr["contribution"] > 0).all() and (egfr["value"] == "True").all()
    assert "treatment" not in set(ex["feature"])


def test_tree_models_explain_with_tree_shap(split):
    train, y_tr, test, _ = split
    m = TreatmentResponseModel(family="xgb_aft", modifiers=MODIFIERS, n_bootstrap=0,
                               base_params={"n_estimators": 50}).fit(train, y_tr)
    ex = m.explain(test.head(4), "osimertinib", top_k=4)
    assert set(ex["scale"]) == {"log_time"} and len(ex) == 16
    # TreeSHAP values equal XGBoost's own TreeSHAP (pred_contribs), and with its bias term they
    # add up to the model's margin (log time)
    import xgboost as xgb

    X = m._design(m.encoder_.transform(test.head(4)[m.feature_names_]),
                  np.full(4, "osimertinib"))
    contribs = m.point_.booster_.predict(xgb.DMatrix(X), pred_contribs=True)
    assert np.allclose(m.point_.shap_values(X), contribs[:, :-1], atol=1e-5)
    full = m.explain(test.head(4), "osimertinib", top_k=100)
    per = full.groupby("patient_key", sort=False)["contribution"].sum().to_numpy()
    _, src = m.design_names()
    treatment_part = contribs[:, :-1][:, np.array(src) == "__treatment__"].sum(axis=1)
    assert np.allclose(per + treatment_part + contribs[:, -1], -m.point_.predict(X), atol=1e-4)


def test_t_learner_predicts_every_arm(split):
    train, y_tr, test, _ = split
    m = TreatmentResponseModel(family="coxph", learner="t", n_bootstrap=3).fit(train, y_tr)
    pred = m.predict_treatments(test.head(10))
    assert pred["predicted_rmst"].notna().all() and len(pred) == 40


def test_model_is_picklable_and_predicts_the_same(cox_s, split):
    _, _, test, _ = split
    again = pickle.loads(pickle.dumps(cox_s))
    pd.testing.assert_frame_equal(again.predict_treatments(test.head(5)),
                                  cox_s.predict_treatments(test.head(5)))


# ------------------------------------------------------------------------------ evaluation
def test_recommendation_policy_value_is_close_to_the_oracle(cox_s, split, cohort):
    """On held-out patients, following the model's top-ranked treatment recovers most of the
    gap between a random choice and the oracle: (value - random) / (oracle - random)."""
    _, oracle, _ = cohort
    train, y_tr, test, y_te = split
    pred = cox_s.predict_treatments(test)
    got = oracle_metrics(pred, oracle)
    assert got["n_oracle_patients"] == len(test)
    assert got["normalised_policy_value"] > 0.8, got
    assert got["regret"] < 0.2 * (got["oracle_value"] - got["random_value_true"])


def test_ipw_policy_value_interval_covers_the_true_value(cox_s, split, cohort):
    """The IPW estimate of the recommendation's RMST (from observed, confounded, censored
    outcomes) agrees with its true value computed from the oracle."""
    _, oracle, _ = cohort
    _, _, test, y_te = split
    pred = cox_s.predict_treatments(test)
    rec = recommendations(pred).set_index("patient_key").loc[test.patient_key]
    prop = cox_s.propensity(test)
    pv = policy_value(rec["recommended"].to_numpy(), test.treatment.to_numpy(), prop,
                      rec["n_candidates"].to_numpy(), y_te["event"], y_te["time"], 24.0,
                      n_boot=300, seed=1)
    true_value = oracle_metrics(pred, oracle)["model_value_true"]
    assert pv["policy_value_lower"] <= true_value <= pv["policy_value_upper"], (pv, true_value)
    assert pv["policy_gain_lower"] > 0  # better than what patients actually received


def test_evaluate_reports_every_metric(cox_s, split, cohort):
    _, oracle, _ = cohort
    train, y_tr, test, y_te = split
    metrics, tables = evaluate(cox_s, train, y_tr, test, y_te, oracle=oracle, n_boot=50)
    for k in ("harrell_c", "uno_c", "integrated_brier", "td_auc", "calibration_ici",
              "calibration_in_the_large", "policy_value", "policy_value_lower",
              "received_value", "random_value", "policy_gain", "autoc", "regret",
              "normalised_policy_value", "c_sex_F", "c_age_band_65-74", "c_stage_IV"):
        assert k in metrics and np.isfinite(metrics[k]), k
    assert 0.6 < metrics["harrell_c"] < 0.8 and metrics["integrated_brier"] < 0.25
    assert abs(metrics["calibration_in_the_large"]) < 0.05
    assert metrics["autoc"] > 0, "patients with larger predicted benefit should benefit more"
    assert set(tables) >= {"calibration", "subgroups", "targeting_curve"}
    assert list(tables["calibration"]["bin"]) == [1, 2, 3, 4, 5]


def test_true_survival_of_the_simulator_is_what_the_model_estimates(cox_s, split):
    """Calibration against the generator's own survival function, per patient."""
    _, _, test, _ = split
    from pipelines.models.simulate import PROGNOSTIC, treatment_log_hr

    t = test.head(200)
    eta = (PROGNOSTIC["age_per_year"] * (t.age_at_diagnosis - 65) + PROGNOSTIC["ecog"] * t.ecog
           + PROGNOSTIC["charlson_index"] * t.charlson_index
           + PROGNOSTIC["stage_iv"] * (t.stage == "IV")
           + treatment_log_hr(np.full(len(t), "osimertinib"), t.egfr_mut, t.pdl1_high,
                              t.kras_g12c)).to_numpy()
    true_s12 = np.exp(-WEIBULL_LAMBDA * np.exp(eta) * 12.0 ** WEIBULL_SHAPE)
    times, s = cox_s.survival_curves(t, "osimertinib")
    est = s[:, np.searchsorted(times, 12.0)]
    assert np.mean(np.abs(est - true_s12)) < 0.05


def test_age_bands():
    got = age_band(pd.Series([40, 50, 64.9, 65, 80, None])).tolist()
    assert got == ["<50", "50-64", "50-64", "65-74", "75+", None]


def test_per_group_learners_route_each_patient_to_its_cancer_type(cohort):
    """per_group=True: one learner per cancer type (own baseline hazard), a pooled learner for
    groups below min_group_size, and every output in the caller's row order."""
    features, _, _ = cohort
    a = features.iloc[:600].copy()
    b = features.iloc[600:1200].copy().assign(cancer_type="LUNG_OTHER")
    c = features.iloc[1200:1230].copy().assign(cancer_type="TINY")
    frame = pd.concat([a, b, c], ignore_index=True).sample(frac=1.0, random_state=0)
    y = make_target(frame.os_event, frame.os_months)
    m = TreatmentResponseModel(family="coxph", modifiers=MODIFIERS, n_bootstrap=2,
                               per_group=True, min_group_size=100).fit(frame, y)
    assert set(m.group_models_) == {"NSCLC", "LUNG_OTHER"} and m.pooled_ is not None
    sample = frame.head(30)
    pred = m.predict_treatments(sample)
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert list(dict.fromkeys(pred.patient_key)) == list(sample.patient_key)
    nsclc = sample[sample.cancer_type == "NSCLC"]
    direct = m.group_models_["NSCLC"].predict_treatments(nsclc)
    mine = pred[pred.patient_key.isin(nsclc.patient_key)].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, direct)
    assert m.predict_risk(sample).shape == (30,) and np.isfinite(m.propensity(sample)).all()
    times, s = m.survival_curves(sample, "osimertinib")
    assert s.shape == (30, len(times))
    assert len(m.explain(sample.head(4), "osimertinib", top_k=2)) == 8
    est, se = m.treatment_log_hr("osimertinib", REFERENCE, {"egfr_mut": 1})
    assert est < 0 and se > 0
    again = pickle.loads(pickle.dumps(m))
    pd.testing.assert_frame_equal(again.predict_treatments(sample), pred)
