"""The ``train`` stage end to end: Delta features in, MLflow runs, registry, champion out."""

from __future__ import annotations

import os

os.environ.setdefault("ONCORANK_XGB_THREADS", "1")

import pandas as pd
import pytest

from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import InputNotFoundError, OncorankError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.models.registry import load_champion
from pipelines.models.simulate import simulate_cohort
from pipelines.models.stage import train_models
from pipelines.models.treatment import PREDICTION_COLUMNS

MODELS = {"families": ["coxph", "xgb_aft"], "n_bootstrap": 3, "n_policy_bootstrap": 30,
          "base_params": {"xgb_aft": {"n_estimators": 60}}}


def _gold(spark, settings, tmp_path, n=700):
    """Simulated features keyed like the pipeline (HMAC of a source id) + the oracle file."""
    features, oracle, _ = simulate_cohort(n, seed=5, key_prefix="PT")
    key = settings.pseudonym_key
    oracle = oracle.rename(columns={"patient_key": "patient_id"})
    features["patient_key"] = [pseudonymise(p, key) for p in features["patient_key"]]
    features["index_date"] = pd.Timestamp("2023-01-01").date()
    truth = tmp_path / "cohort" / "truth"
    truth.mkdir(parents=True)
    oracle.to_csv(truth / "treatment_oracle.csv", index=False)
    sdf = spark.createDataFrame(features)
    delta.write_table(spark, sdf, settings.table("gold", "patient_features"), mode="overwrite")
    return features, truth / "treatment_oracle.csv"


def test_train_registers_a_champion_that_scores_and_explains(spark, settings, tmp_path,
                                                             monkeypatch):
    # the code version is part of the training fingerprint; other commits must not change it
    monkeypatch.setenv("ONCORANK_GIT_SHA", "test-sha")
    features, oracle_path = _gold(spark, settings, tmp_path)
    settings = settings.replace(sections={"models": {**MODELS, "oracle": str(oracle_path)}})
    run = train_models(spark, settings)
    assert run.status == "succeeded" and "gold.patient_features" in run.tables_read
    # ops.job_runs: the 700 training rows in, the same rows used for the models (written)
    assert _job_runs(spark, settings) == [("succeeded", 700, 700, 0)]

    champ = load_champion(settings)
    assert champ.version == "1" and champ.name == settings.registered_model_name
    card = champ.card
    assert card["model_family"] in ("coxph", "xgb_aft") and card["horizon_months"] == 24.0
    assert card["training_cohort"]["n_patients"] == 525  # 75% of 700
    assert card["training_cohort"]["n_events"] > 100
    assert card["training_cohort"]["index_date_range"] == ["2023-01-01", "2023-01-01"]
    # TRIPOD+AI: the card names the estimand and the limitations no figure shows
    assert "unmeasured" in card["estimand"] and "cannot be excluded" in card["limitations"]
    v = card["validation"]
    assert 0.55 < v["harrell_c"] < 0.85 and v["uno_c"] > 0.5 and v["integrated_brier"] < 0.25
    assert "calibration_ici" in v and "policy_value" in v and "normalised_policy_value" in v
    levels = {(s["subgroup"], s["level"]) for s in card["subgroup_c_index"]}
    assert {("sex", "F"), ("cancer_type", "NSCLC"), ("stage", "IV")} <= levels
    assert any(s == "age_band" for s, _ in levels)
    assert "egfr_mut" in card["features"] and "stage" not in card["features"]
    dist = card["feature_distributions"]
    assert dist["age_at_diagnosis"]["type"] == "numeric" and "0.50" in dist[
        "age_at_diagnosis"]["quantiles"]
    assert dist["sex"]["shares"]["F"] > 0.3
    assert card["delta_versions"]["gold.patient_features"] == 0
    # drift reference: the training features, without identifiers
    tf = champ.training_features
    assert len(tf) == 525 and "patient_key" not in tf.columns and "age_at_diagnosis" in tf

    pred = champ.model.predict_treatments(features.head(20))
    assert list(pred.columns) == PREDICTION_COLUMNS and len(pred) == 80
    ex = champ.model.explain(features.head(3), "osimertinib", top_k=4)
    assert len(ex) == 12 and set(ex.columns) >= {"patient_key", "feature", "contribution"}

    metrics = delta.read_table(spark, settings.table("gold", "model_metrics")).toPandas()
    sel = metrics[metrics.selected]
    assert set(metrics.family) == {"coxph", "xgb_aft"} and (sel.model_version == "1").all()
    npv = sel.set_index("metric")["value"]["normalised_policy_value"]
    assert npv > 0.3  # regret against the oracle is computed and the policy beats chance

    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    exps = {e.name for e in client.search_experiments()}
    assert {"oncorank/coxph", "oncorank/xgb_aft"} <= exps
    art = [f.path for f in client.list_artifacts(champ.run_id, "plots")]
    assert {"plots/calibration.png", "plots/targeting_curve.png",
            "plots/shap_summary.png"} <= set(art)
    r = client.get_run(champ.run_id)
    assert r.data.tags["oncorank.promoted"] == "true" and r.data.tags["git_sha"] == "test-sha"
    assert r.data.tags["delta.gold.patient_features"] == "0"
    assert str(settings.lakehouse) in client.get_experiment(r.info.experiment_id).artifact_location
    assert mlflow.get_tracking_uri().startswith("sqlite:")

    # Re-running with unchanged inputs, code and config registers nothing new.
    train_models(spark, settings)
    versions = client.search_model_versions(f"name='{settings.registered_model_name}'")
    assert len(versions) == 1
    assert _job_runs(spark, settings)[-1] == ("succeeded", 700, 700, 0)

    # A worse model (prognostic features removed) is registered but not promoted.
    worse = settings.replace(sections={"models": {
        **MODELS, "families": ["coxph"], "force": True, "oracle": str(oracle_path),
        "exclude_features": ["stage", "stage_num", "age_at_diagnosis", "ecog", "charlson_index",
                             "egfr_mut", "kras_g12c", "pdl1_high", "pdl1_tps"]}})
    train_models(spark, worse)
    versions = client.search_model_versions(f"name='{settings.registered_model_name}'")
    assert len(versions) == 2
    assert load_champion(settings).version == "1"
    v2 = next(v for v in versions if str(v.version) == "2")
    reason = client.get_run(v2.run_id).data.tags["oncorank.promotion_reason"]
    assert reason.startswith("worse than the champion")


def test_no_champion_is_a_clear_error(settings):
    with pytest.raises(OncorankError, match="run `oncorank run --only train` first"):
        load_champion(settings)


def test_train_without_features_table_is_a_clear_error(spark, settings):
    with pytest.raises(InputNotFoundError, match="build-features"):
        train_models(spark, settings)


def test_train_with_too_few_outcomes_is_a_clear_error(spark, settings, tmp_path):
    from pipelines.lakehouse.errors import DataQualityError

    features, _ = _gold(spark, settings, tmp_path, n=12)
    with pytest.raises(DataQualityError, match="training needs at least 20 patients"):
        train_models(spark, settings)
    assert _job_runs(spark, settings) == [("failed", 12, 0, 0)]


def test_train_counts_only_patients_with_a_treatment_and_an_outcome(spark, settings, tmp_path):
    """Patients still awaiting an outcome (or without a first-line treatment) are not training
    input: rows in counts the training rows only."""
    from pipelines.lakehouse.errors import DataQualityError

    features, _, _ = simulate_cohort(30, seed=5, key_prefix="PT")
    features["patient_key"] = [pseudonymise(p, settings.pseudonym_key)
                               for p in features["patient_key"]]
    features["index_date"] = pd.Timestamp("2023-01-01").date()
    features["os_months"] = features["os_months"].astype(float)
    features.loc[:9, "os_months"] = None
    features.loc[10:14, "treatment"] = None
    delta.write_table(spark, spark.createDataFrame(features),
                      settings.table("gold", "patient_features"), mode="overwrite")
    with pytest.raises(DataQualityError, match="has 15 patients"):
        train_models(spark, settings)
    assert _job_runs(spark, settings) == [("failed", 15, 0, 0)]


def _job_runs(spark, settings) -> list[tuple]:
    """(status, rows_in, rows_written, rows_quarantined) of the train runs, oldest first."""
    runs = delta.read_table(spark, settings.table("ops", "job_runs")).filter("job = 'train'")
    return [(r.status, r.rows_in, r.rows_written, r.rows_quarantined)
            for r in runs.orderBy("started_at").collect()]


def test_xgboost_spark_cox_trains_across_spark_tasks(spark):
    """The distributed route: xgboost.spark survival:cox with the Breslow baseline aggregated
    in Spark; the fitted model then scores without Spark and ranks like single-node XGBoost."""
    import numpy as np

    from pipelines.models.design import make_target
    from pipelines.models.estimators import SparkXGBSurvival, XGBSurvival

    features, _, _ = simulate_cohort(800, seed=9)
    X = features[["age_at_diagnosis", "ecog", "charlson_index"]].to_numpy(float)
    y = make_target(features.os_event, features.os_months)
    dist = SparkXGBSurvival(n_estimators=60, num_workers=1).fit(X, y)
    local = XGBSurvival(n_estimators=60).fit(X, y)
    assert dist.score(X, y) > 0.6 and abs(dist.score(X, y) - local.score(X, y)) < 0.02
    times = np.array([0.0, 6.0, 12.0, 24.0])
    s_dist, s_local = dist.predict_survival(X, times), local.predict_survival(X, times)
    assert np.abs(s_dist.mean(axis=0) - s_local.mean(axis=0)).max() < 0.03
    assert np.all(np.diff(s_dist, axis=1) <= 1e-9)
    import pickle

    assert np.allclose(pickle.loads(pickle.dumps(dist)).predict_survival(X[:3], times),
                       s_dist[:3])


def test_xgboost_spark_refuses_aft_with_the_reason(spark):
    from pipelines.lakehouse.errors import ConfigError
    from pipelines.models.design import make_target
    from pipelines.models.estimators import SparkXGBSurvival

    features, _, _ = simulate_cohort(50, seed=9)
    X = features[["age_at_diagnosis", "ecog"]].to_numpy(float)
    with pytest.raises(ConfigError, match="label lower/upper bound"):
        SparkXGBSurvival(objective="survival:aft").fit(
            X, make_target(features.os_event, features.os_months))
