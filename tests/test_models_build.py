"""The train stage's pure steps (split, fit, select) without MLflow or a table."""

from __future__ import annotations

import os

os.environ.setdefault("ONCORANK_XGB_THREADS", "1")

from pipelines.models.simulate import simulate_cohort
from pipelines.models.stage import DEFAULTS, fit_and_select, split_for_validation
from pipelines.models.treatment import infer_feature_columns


def test_split_is_reproducible_and_stratified_by_the_event():
    features, _, _ = simulate_cohort(400, seed=3, key_prefix="PT")
    cfg = {**DEFAULTS, "validation_fraction": 0.25, "seed": 11}
    train, val, y_tr, y_va = split_for_validation(features, cfg)
    again = split_for_validation(features, cfg)
    assert (len(train), len(val)) == (300, 100)
    assert list(train["patient_key"]) == list(again[0]["patient_key"])
    share = features["os_event"].mean()
    assert abs(y_va["event"].mean() - share) < 0.02 and abs(y_tr["event"].mean() - share) < 0.02


def test_fit_and_select_fits_every_family_and_refits_only_the_chosen_one():
    features, _, _ = simulate_cohort(500, seed=4, key_prefix="PT")
    cfg = {**DEFAULTS, "families": ["coxph", "xgb_aft"], "n_bootstrap": 3,
           "n_policy_bootstrap": 10, "base_params": {"xgb_aft": {"n_estimators": 40}}}
    train, val, y_tr, y_va = split_for_validation(features, cfg)
    cols = infer_feature_columns(features, exclude=cfg["exclude_features"])
    fitted, chosen = fit_and_select(train, y_tr, val, y_va, cfg["families"], cfg, cols, 24.0)
    assert [f[0] for f in fitted] == ["coxph", "xgb_aft"]
    assert all("harrell_c" in f[2] for f in fitted)
    assert chosen[1].n_replicates == 3
    assert all(f[1].n_replicates == 0 for f in fitted if f is not chosen)
