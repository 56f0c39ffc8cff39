"""The analyst notebooks run as plain Python on a small lakehouse and compute the right numbers.

The lakehouse is written through the pipeline's own Delta writer with the contract columns
and planted effects (EGFR-mutant NSCLC lives longer on osimertinib; predictions informative
on two board dates and noise on the third). Each notebook's results are checked against an
independent computation: pandas for counts and shares, lifelines for Kaplan–Meier, log-rank
and the C-index. Figures are saved under test-artifacts/notebooks/ for a human to look at.
A slow test runs the four notebooks on the lakehouse of a real `oncorank demo` run.
"""

from __future__ import annotations

import datetime as dt
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse import delta
from pipelines.lakehouse.comments import comments_for
from pipelines.lakehouse.settings import Settings

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
BOARD_DATES = [dt.date(2026, 9, 3), dt.date(2026, 10, 1), dt.date(2026, 11, 5)]
N_PATIENTS = 300
# Planted median overall survival (months) by cancer type, EGFR status and treatment.
MEDIANS = {("NSCLC", True, "osimertinib"): 36.0, ("NSCLC", True, "platinum_pemetrexed"): 9.0,
           ("NSCLC", False, "pembrolizumab"): 16.0, ("NSCLC", False, "platinum_pemetrexed"): 11.0}


# ---------------------------------------------------------------------------- the lakehouse
def _cohort(seed: int = 11) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    catalog = regimen_catalog()
    types = rng.choice(["NSCLC", "BRCA", "COADREAD", "MEL"], N_PATIENTS, p=[.5, .2, .15, .15])
    keys = [rng.bytes(10).hex() for _ in range(N_PATIENTS)]  # like patient_key: 20 hex chars
    assert len(set(keys)) == N_PATIENTS
    egfr = np.where(types == "NSCLC", rng.random(N_PATIENTS) < 0.4, False)
    egfr_known = rng.random(N_PATIENTS) > 0.1
    treatments, medians = [], []
    for ct, mut in zip(types, egfr, strict=True):
        if ct == "NSCLC":
            options = (["osimertinib"] * 2 + ["platinum_pemetrexed"]) if mut else [
                "pembrolizumab", "platinum_pemetrexed"]
            treatment = str(rng.choice(options))
            medians.append(MEDIANS[(ct, bool(mut), treatment)])
        else:
            treatment = str(rng.choice([r.name for r in catalog.for_cancer_type(ct)]))
            medians.append({"BRCA": 40.0, "COADREAD": 22.0, "MEL": 18.0}[ct])
        treatments.append(treatment)
    medians = np.array(medians)
    death = rng.exponential(medians / np.log(2))
    followup = rng.uniform(6, 60, N_PATIENTS)
    os_months = np.round(np.minimum(death, followup), 2)
    os_event = (death <= followup).astype(int)
    index = [dt.date(2019, 1, 1) + dt.timedelta(days=int(d))
             for d in rng.integers(0, 1200, N_PATIENTS)]
    stage = rng.choice(["I", "II", "III", "IV"], N_PATIENTS, p=[.1, .2, .3, .4])
    features = pd.DataFrame({
        "patient_key": keys, "index_date": index, "cancer_type": types, "treatment": treatments,
        "os_months": os_months, "os_event": os_event, "stage": stage,
        "sex": rng.choice(["female", "male"], N_PATIENTS),
        "age_at_diagnosis": np.round(rng.normal(64, 9, N_PATIENTS), 1),
        "egfr_mut": pd.array([bool(m) if k else None for m, k in zip(egfr, egfr_known,
                                                                     strict=True)],
                             dtype="boolean"),
        "kras_g12c": pd.array(np.where(types == "NSCLC", rng.random(N_PATIENTS) < .1, False),
                              dtype="boolean"),
        "tmb": np.round(rng.gamma(2, 4, N_PATIENTS), 2),
    })
    patients = features[["patient_key", "sex", "cancer_type", "stage"]].assign(
        age_at_diagnosis=features["age_at_diagnosis"].clip(upper=90),
        zip3=rng.choice(["021", "100", "000"], N_PATIENTS),
        diagnosis_date=features["index_date"], index_date=features["index_date"],
        ecog=rng.integers(0, 3, N_PATIENTS), source="csv")
    outcomes = features[["patient_key", "index_date", "os_months", "os_event"]].assign(
        first_line_treatment=features["treatment"])

    ranking_rows = []
    board_of = rng.integers(0, len(BOARD_DATES), N_PATIENTS)
    for i, key in enumerate(keys):
        board = BOARD_DATES[board_of[i]]
        for regimen in catalog.for_cancer_type(types[i]):
            truth = MEDIANS.get((types[i], bool(egfr[i]), regimen.name), medians[i] * 0.8)
            if regimen.name == treatments[i]:
                truth = medians[i]
            # Informative on the first two board dates (patients' own survival drives the
            # received option's prediction), noise on the last: the realised C-index drops.
            signal = np.log(death[i]) if board != BOARD_DATES[-1] else rng.normal(2.5, 1)
            rmst = float(np.clip(6 * signal + 0.3 * truth + rng.normal(0, 1), 1, 24))
            ranking_rows.append({"patient_key": key, "treatment": regimen.name,
                                 "predicted_rmst": round(rmst, 2), "board_date": board,
                                 "overlap_warning": bool(rng.random() < .1),
                                 "contraindications": ["ci_renal"] if rng.random() < .1 else [],
                                 "evidence_level": "A" if regimen.name == "osimertinib" and
                                 egfr[i] else None})
    rankings = pd.DataFrame(ranking_rows)
    rankings["rank"] = rankings.groupby(["patient_key", "board_date"])["predicted_rmst"].rank(
        ascending=False, method="first").astype(int)

    drift = pd.DataFrame([{"board_date": b, "feature": f, "kind": "numeric",
                           "psi": psi, "ks_stat": psi / 2, "drifted": psi >= 0.25}
                          for b, shift in zip(BOARD_DATES, (0.02, 0.05, 0.3), strict=True)
                          for f, psi in (("age_at_diagnosis", shift), ("tmb", shift / 3),
                                         ("ecog", 0.01))])
    started = dt.datetime(2026, 11, 4, 22, 0)
    job_runs = pd.DataFrame([
        {"run_id": f"r{i}", "job": job, "started_at": started + dt.timedelta(minutes=i),
         "status": "succeeded", "rows_in": n_in, "rows_written": n_out,
         "rows_quarantined": n_q}
        for i, (job, n_in, n_out, n_q) in enumerate([
            ("ingest-clinical", N_PATIENTS + 2, N_PATIENTS, 2),
            ("build-features", N_PATIENTS, N_PATIENTS, 0),
            ("score", N_PATIENTS, N_PATIENTS - 1, 0)])])  # score lost a row: must be flagged
    findings = pd.DataFrame({
        "finding_id": [f"f{i}" for i in range(6)], "patient_key": keys[:6],
        "note_id": [f"n{i}" for i in range(6)], "concept": ["EGFR L858R"] * 3 + ["ECOG"] * 3,
        "category": ["biomarker"] * 3 + ["performance_status"] * 3,
        "context": ["affirmed", "negated", "affirmed", "affirmed", "historical", "affirmed"]})
    return {"features": features, "patients": patients, "outcomes": outcomes,
            "rankings": rankings, "drift": drift, "job_runs": job_runs, "findings": findings}


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    from pipelines.lakehouse.audit import JOB_RUNS_SCHEMA, QUARANTINE_SCHEMA
    from pipelines.quality.results import DATA_QUALITY_SCHEMA

    data = _cohort()
    settings = Settings(lakehouse=tmp_path_factory.mktemp("notebooks") / "lakehouse")

    def write(key, frame, keys, schema=None):
        ref = settings.table(*key.split("."))
        df = spark.createDataFrame(frame, schema) if schema is not None else (
            spark.createDataFrame(frame))
        delta.write_table(spark, df, ref, keys=keys, **comments_for(ref, df.columns))

    write("gold.patient_features", data["features"], ["patient_key"],
          "patient_key string, index_date date, cancer_type string, treatment string, "
          "os_months double, os_event int, stage string, sex string, age_at_diagnosis double, "
          "egfr_mut boolean, kras_g12c boolean, tmb double")
    write("silver.patients", data["patients"], ["patient_key"])
    write("silver.outcomes", data["outcomes"], ["patient_key"])
    write("silver.note_findings", data["findings"], ["finding_id"])
    write("gold.treatment_rankings", data["rankings"], ["patient_key", "treatment", "board_date"],
          "patient_key string, treatment string, predicted_rmst double, board_date date, "
          "overlap_warning boolean, contraindications array<string>, evidence_level string, "
          "rank int")
    write("gold.drift", data["drift"], ["board_date", "feature"])
    runs = data["job_runs"].assign(parent_run_id=None, ended_at=None, tables_read=None,
                                   tables_written=None, git_sha="abc", config_hash="h",
                                   environment="local", message=None)
    write("ops.job_runs", runs[JOB_RUNS_SCHEMA.names], ["run_id"], JOB_RUNS_SCHEMA)
    now = dt.datetime(2026, 11, 4, 22, 5)
    dq = [("r0", "ingest-clinical", "silver.patients", name, "expect", None, sev, ok, status,
           action, None, unexpected, N_PATIENTS + 2, None, "silver.patients", None, now)
          for name, sev, ok, status, action, unexpected in (
              ("key_unique", "stop", True, "passed", "none", 0),
              ("ecog_range", "quarantine", False, "failed", "quarantined", 2),
              ("sex_values", "warn", True, "passed", "none", 0))]
    delta.write_table(spark, spark.createDataFrame(dq, DATA_QUALITY_SCHEMA),
                      settings.table("ops", "data_quality"), mode="append")
    bad = [(f"q{i}", "silver.patients", "patients.csv", i, "{}", "ecog_range", "ECOG 7",
            "r0", now) for i in range(2)]
    delta.write_table(spark, spark.createDataFrame(bad, QUARANTINE_SCHEMA),
                      settings.quarantine_table(settings.table("silver", "patients")),
                      keys=["quarantine_id"])
    metrics = [(f"run{i}", "oncorank_treatment_response", family, True, str(i + 1),
                family == "coxph", metric, value, "fp", f"2026-{9 + i:02d}-01T02:00:00+00:00")
               for i, c in enumerate((0.66, 0.68, 0.64))
               for family, shift in (("coxph", 0.0), ("xgb_aft", -0.02))
               for metric, value in (("harrell_c", c + shift), ("uno_c", c + shift - 0.01),
                                     ("c_cancer_type_NSCLC", 0.6))]
    write("gold.model_metrics", pd.DataFrame(metrics, columns=[
        "run_id", "model_name", "family", "selected", "model_version", "promoted", "metric",
        "value", "fingerprint", "trained_at"]), ["run_id", "family", "metric"])
    _log_training_runs(settings)
    return settings, data


def _log_training_runs(settings: Settings) -> None:
    """Three real MLflow runs in the local store, as the train stage logs them."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    exp = client.create_experiment(f"{settings.mlflow_experiment}/coxph",
                                   artifact_location=settings.mlflow_artifact_root)
    for c in (0.66, 0.68, 0.64):
        run = client.create_run(exp)
        client.log_metric(run.info.run_id, "harrell_c", c)
        client.log_metric(run.info.run_id, "uno_c", c - 0.01)
        client.set_terminated(run.info.run_id)


def _run(path: Path, settings: Settings, monkeypatch, **params) -> dict:
    out = ARTIFACTS / path.stem
    monkeypatch.setenv("ONCORANK_LAKEHOUSE", str(settings.lakehouse))
    monkeypatch.setenv("ONCORANK_FIGURES_DIR", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name, value in params.items():
        monkeypatch.setenv(f"ONCORANK_{name.upper()}", value)
    return runpy.run_path(str(path), run_name="__main__")


def _figures_are_real(directory: Path, names: list[str]) -> None:
    import matplotlib.image as mpimg

    for name in names:
        png = directory / f"{name}.png"
        assert png.is_file(), png
        image = mpimg.imread(png)
        assert image.shape[0] > 150 and image.shape[1] > 300
        # A real plot has many colours; an empty canvas has one or two.
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20, png


def _notebook(name: str) -> Path:
    return next(p for p in NOTEBOOK_FILES if name in p.name)


# ---------------------------------------------------------------------------- format
@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_notebooks_are_databricks_source_files_that_only_read_analyst_tables(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Databricks notebook source\n")
    assert text.count("\n# COMMAND ----------\n") >= 3
    assert "# MAGIC %md" in text.split("# COMMAND ----------")[0]
    for hidden in ("bronze.", "restricted.", "patient_identity", "delta.`"):
        assert hidden not in text, f"{path.name} mentions {hidden}"
    # No job logic: notebooks read, summarise and plot; writes belong to jobs/.
    for write in ("write_table", ".write.", "saveAsTable", "run.write", "job_run("):
        assert write not in text, f"{path.name} writes ({write})"


def test_there_is_a_notebook_for_each_analysis():
    names = [p.stem for p in NOTEBOOK_FILES]
    for topic in ("cohort_overview", "survival", "ranking_audit", "model_monitoring"):
        assert any(topic in n for n in names), topic


# ---------------------------------------------------------------------------- cohort overview
def test_cohort_overview(lakehouse, monkeypatch):
    settings, data = lakehouse
    ns = _run(_notebook("cohort_overview"), settings, monkeypatch)
    counts = ns["counts"].set_index("table")
    assert counts.loc["silver.patients", "rows"] == N_PATIENTS
    assert counts.loc["gold.treatment_rankings", "rows"] == len(data["rankings"])
    assert counts.loc["gold.treatment_rankings", "patients"] == N_PATIENTS
    assert "silver.variants" not in counts.index  # not in this lakehouse: skipped, not failed

    expected = pd.crosstab(data["patients"]["cancer_type"], data["patients"]["stage"])
    got = ns["cancer_stage"].drop(columns="total")
    pd.testing.assert_frame_equal(got.sort_index().sort_index(axis=1), expected,
                                  check_names=False, check_dtype=False)

    prevalence = ns["prevalence"].set_index(["cancer_type", "biomarker"])
    nsclc = data["features"][data["features"]["cancer_type"] == "NSCLC"]["egfr_mut"].dropna()
    row = prevalence.loc[("NSCLC", "egfr_mut")]
    assert row["known"] == len(nsclc) and row["positive"] == int(nsclc.sum())
    assert row["prevalence"] == pytest.approx(nsclc.mean())

    runs = ns["runs"].set_index("job")
    assert bool(runs.loc["ingest-clinical", "reconciled"])
    assert not bool(runs.loc["score", "reconciled"])
    quality = ns["quality"].set_index("table")
    assert quality.loc["silver.patients", "status"] == "quarantined"
    assert quality.loc["silver.patients", "quarantined_rows"] == 2
    assert ns["findings"].loc["biomarker", "negated"] == 1
    # Re-identification risk, recomputed here with pandas from the same patients.
    from pipelines.analytics.privacy_risk import QUASI_IDENTIFIERS, age_band_of

    p = data["patients"].assign(
        age_band=[age_band_of(a) for a in data["patients"]["age_at_diagnosis"]],
        index_year=[d.year for d in data["patients"]["index_date"]])
    risk = ns["risk"].set_index("quasi_identifiers")
    for i in (1, 3, len(QUASI_IDENTIFIERS)):
        names = list(QUASI_IDENTIFIERS[:i])
        sizes = p.groupby(names, dropna=False).size()
        row = risk.loc[" + ".join(names)]
        assert (row["classes"], row["unique_patients"], row["below_k_floor"]) == (
            len(sizes), int((sizes == 1).sum()), int(sizes[sizes < 5].sum()))
    assert risk["unique_patients"].is_monotonic_increasing
    _figures_are_real(ARTIFACTS / "01_cohort_overview",
                      ["cohort_cancer_types", "cohort_biomarker_prevalence",
                       "cohort_data_quality"])


# ---------------------------------------------------------------------------- survival
def test_survival_notebook_matches_lifelines_and_finds_the_planted_effect(lakehouse,
                                                                          monkeypatch):
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    settings, data = lakehouse
    ns = _run(_notebook("survival"), settings, monkeypatch, cancer_type="NSCLC",
              biomarker="egfr_mut")
    f = data["features"]
    nsclc = f[(f["cancer_type"] == "NSCLC") & f["egfr_mut"].notna()]
    reference = multivariate_logrank_test(nsclc["os_months"], nsclc["egfr_mut"].astype(str),
                                          nsclc["os_event"])
    assert ns["tests"]["biomarker"]["chisq"] == pytest.approx(reference.test_statistic,
                                                             rel=1e-6)
    assert ns["tests"]["biomarker"]["p_value"] == pytest.approx(reference.p_value, rel=1e-6)

    positive = nsclc[nsclc["egfr_mut"].astype(bool)]
    table = ns["tables"]["treatment_pos"].set_index("group")
    for treatment, part in positive.groupby("treatment"):
        kmf = KaplanMeierFitter().fit(part["os_months"], part["os_event"])
        curve = kmf.survival_function_["KM_estimate"]
        # Median = first time S(t) <= 0.5 (lifelines' own median uses S(t) < 0.5).
        reached = curve[curve <= 0.5 + 1e-9]
        expected = float(reached.index[0]) if len(reached) else float("nan")
        assert table.loc[treatment, "median_months"] == pytest.approx(expected, nan_ok=True)
        assert table.loc[treatment, "surv_12"] == pytest.approx(
            float(kmf.survival_function_at_times(12.0).iloc[0]))
    # The planted effect: EGFR-mutant NSCLC does better on osimertinib than on chemotherapy.
    assert ns["tests"]["treatment_pos"]["p_value"] < 0.05  # power ~1 at this design
    assert table.loc["osimertinib", "median_months"] > table.loc["platinum_pemetrexed",
                                                                 "median_months"]
    assert set(ns["tests"]) >= {"cancer_type", "biomarker", "treatment", "treatment_pos",
                                "treatment_neg"}
    _figures_are_real(ARTIFACTS / "02_survival_by_biomarker_and_treatment",
                      ["km_cancer_type", "km_biomarker", "km_treatment", "km_treatment_pos"])


def test_survival_notebook_refuses_an_unknown_biomarker(lakehouse, monkeypatch):
    settings, _ = lakehouse
    with pytest.raises(ValueError, match="not a flag"):
        _run(_notebook("survival"), settings, monkeypatch, biomarker="made_up")


# ---------------------------------------------------------------------------- ranking audit
def test_ranking_audit(lakehouse, monkeypatch):
    settings, data = lakehouse
    ns = _run(_notebook("ranking_audit"), settings, monkeypatch)
    rankings = data["rankings"]
    latest = rankings[(rankings["board_date"] == BOARD_DATES[-1]) & (rankings["rank"] == 1)]
    merged = latest.merge(data["features"][["patient_key", "cancer_type", "treatment"]],
                          on="patient_key", suffixes=("", "_given"))
    expected = merged.groupby(["cancer_type", "treatment"]).size()
    got = ns["shares"]["cancer_type"].set_index(["cancer_type", "top_treatment"])["patients"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    shares = ns["shares"]["cancer_type"].groupby("cancer_type")["share"].sum()
    assert np.allclose(shares, 1.0)

    rate = (merged["treatment"] == merged["treatment_given"]).mean()
    assert ns["overall"]["rate"].iloc[0] == pytest.approx(rate)
    assert ns["flag_summary"]["patients"].iloc[0] == len(latest)
    assert ns["flag_summary"]["top option has an overlap warning"].iloc[0] == int(
        latest["overlap_warning"].sum())
    assert "egfr_mut_status" in ns["shares"]
    _figures_are_real(ARTIFACTS / "03_ranking_audit", ["audit_top_choice_by_cancer_type"])


# ---------------------------------------------------------------------------- monitoring
def test_model_monitoring(lakehouse, monkeypatch):
    from lifelines.utils import concordance_index

    settings, data = lakehouse
    ns = _run(_notebook("model_monitoring"), settings, monkeypatch)
    realised = ns["realised"].set_index("board_date")
    received = data["rankings"].merge(data["features"][["patient_key", "treatment", "os_months",
                                                        "os_event"]],
                                      on=["patient_key", "treatment"])
    for board, part in received.groupby("board_date"):
        expected = concordance_index(part["os_months"], part["predicted_rmst"], part["os_event"])
        assert realised.loc[board, "harrell_c"] == pytest.approx(expected, abs=1e-9)
        assert realised.loc[board, "patients"] == len(part)
    # Informative predictions on the first two boards, noise on the last.
    assert realised.loc[BOARD_DATES[0], "harrell_c"] > 0.65
    assert realised.loc[BOARD_DATES[-1], "harrell_c"] < realised.loc[BOARD_DATES[0],
                                                                     "harrell_c"] - 0.1

    table = ns["model_metrics"]
    coxph = table[(table["family"] == "coxph") & (table["metric"] == "harrell_c")]
    assert coxph["value"].round(2).tolist() == [0.66, 0.68, 0.64]
    assert len(table) == 12 and set(table["metric"]) == {"harrell_c", "uno_c"}

    history = ns["history"]
    assert history["harrell_c"].tolist() == [0.66, 0.68, 0.64]
    assert set(history["experiment"]) == {"oncorank/coxph"}
    drift = ns["drift"]
    assert len(drift) == len(data["drift"])
    _figures_are_real(ARTIFACTS / "04_model_monitoring",
                      ["monitoring_validation_c_index", "monitoring_model_metrics",
                       "monitoring_realised_c_index",
                       "monitoring_drift_latest", "monitoring_drift_over_time"])


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_notebooks_run_on_the_lakehouse_of_a_real_pipeline_run(demo_run, monkeypatch):
    out, settings = demo_run  # the session's `oncorank demo` (40 patients)
    # As the README says: point the notebooks at the demo's config.
    monkeypatch.setenv("ONCORANK_CONFIG", str(out / "oncorank.toml"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    results = {}
    for path in NOTEBOOK_FILES:
        monkeypatch.setenv("ONCORANK_FIGURES_DIR", str(ARTIFACTS / "demo" / path.stem))
        results[path.stem] = runpy.run_path(str(path), run_name="__main__")
        assert results[path.stem]["nb"].settings.lakehouse == settings.lakehouse
    overview = results["01_cohort_overview"]
    assert overview["counts"].set_index("table").loc["silver.patients", "patients"] == 40
    assert overview["runs"]["reconciled"].all()
    monitoring = results["04_model_monitoring"]
    assert len(monitoring["history"]) >= 1 and monitoring["history"]["harrell_c"].notna().any()
    audit = results["03_ranking_audit"]
    assert audit["flag_summary"]["patients"].iloc[0] == audit["top"]["patient_key"].nunique()
