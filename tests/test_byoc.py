"""``oncorank train --cohort …``: bring your own cohort, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
ONCORANK = [sys.executable, "-m", "pipelines.cli"]
GBSG2_HORMONAL_HR = 0.707  # published adjusted Cox HR (see benchmarks/RESULTS.md)


def _cli(args, cwd):
    env = {**os.environ, "ONCORANK_XGB_THREADS": "1", "MLFLOW_ENABLE_TELEMETRY": "false"}
    return subprocess.run([*ONCORANK, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def gbsg2_csv(tmp_path_factory) -> Path:
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    df = X.copy()
    df["time"] = y["time"]
    df["cens"] = y["cens"].astype(int)
    path = tmp_path_factory.mktemp("byoc") / "gbsg2.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def summary(gbsg2_csv):
    out = gbsg2_csv.parent / "runs"
    res = _cli(["train", "--cohort", str(gbsg2_csv), "--time-col", "time", "--event-col",
                "cens", "--treatment-col", "horTh", "--out", str(out)], cwd=gbsg2_csv.parent)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout), out


def test_train_prints_one_json_summary(summary):
    data, _ = summary
    assert data["n_patients"] == 686 and data["n_events"] == 299
    assert data["reference_treatment"] == "no"
    assert set(data["models"]) == {"coxph", "rsf", "xgb_cox", "xgb_aft"}
    for family, m in data["models"].items():
        assert 0.6 < m["test_c_index"] < 0.8, family
        assert 0.1 < m["test_integrated_brier"] < 0.25, family
    # categoricals were encoded automatically
    assert "tgrade=III" in data["encoded_features"] and "menostat=Pre" in data["encoded_features"]
    shares = data["rank_first_share"]
    assert set(shares) == {"no", "yes"} and sum(shares.values()) == pytest.approx(1.0)


def test_hormonal_therapy_effect_matches_the_published_trial_analysis(summary):
    data, _ = summary
    eff = data["treatment_effects"]["yes"]
    assert eff["hazard_ratio_lower"] < GBSG2_HORMONAL_HR < eff["hazard_ratio_upper"]
    assert eff["hazard_ratio"] == pytest.approx(GBSG2_HORMONAL_HR, abs=0.02)
    # longer restricted mean survival on hormonal therapy, CI excluding 0 (days)
    assert eff["rmst_difference"] > 0 and eff["rmst_difference_lower"] > 0
    assert eff["rmst_difference_lower"] < eff["rmst_difference"] < eff["rmst_difference_upper"]
    # the benefit is for (nearly) everyone under a proportional effect
    assert data["rank_first_share"]["yes"] > 0.8


def test_runs_are_logged_to_mlflow_under_out(summary):
    import mlflow
    from mlflow.tracking import MlflowClient

    data, out = summary
    assert (out / "mlflow.db").is_file() and (out / "mlruns").is_dir()
    client = MlflowClient(tracking_uri=data["mlflow"]["tracking_uri"])
    run = client.get_run(data["mlflow"]["run_ids"]["rsf"])
    assert run.data.metrics["test_c_index"] == pytest.approx(data["models"]["rsf"]["test_c_index"])
    parent = data["mlflow"]["run_ids"]["summary"]
    logged = mlflow.artifacts.load_dict(f"{client.get_run(parent).info.artifact_uri}/summary.json")
    assert logged["n_patients"] == 686


def test_parquet_cohort_with_feature_subset_and_horizon(gbsg2_csv, tmp_path):
    pq = tmp_path / "gbsg2.parquet"
    df = pd.read_csv(gbsg2_csv)
    df.loc[:4, "time"] = None  # rows without an outcome are dropped and counted
    df.to_parquet(pq)
    res = _cli(["train", "--cohort", str(pq), "--time-col", "time", "--event-col", "cens",
                "--treatment-col", "horTh", "--feature-cols", "age,pnodes",
                "--feature-cols", "tgrade", "--horizon", "1825", "--out", str(tmp_path / "o")],
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(res.stdout)
    assert data["features"] == ["age", "pnodes", "tgrade"] and data["horizon"] == 1825.0
    assert data["n_patients"] == 681 and data["n_rows_dropped"] == 5


@pytest.mark.parametrize("args,message", [
    (["--time-col", "days"], "no column(s) ['days']"),
    (["--event-col", "menostat"], "Event column 'menostat' has values ['post', 'pre']"),
    (["--treatment-col", "menostat", "--event-col", "tsize"], "must be 0/1"),
])
def test_bad_columns_give_one_readable_message(gbsg2_csv, tmp_path, args, message):
    base = {"--time-col": "time", "--event-col": "cens", "--treatment-col": "horTh"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    res = _cli(["train", "--cohort", str(gbsg2_csv), *flat, "--out", str(tmp_path)], tmp_path)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert res.stdout.strip() == ""


def test_unreadable_or_unknown_files_give_one_readable_message(tmp_path):
    bad = tmp_path / "cohort.parquet"
    bad.write_bytes(b"not parquet at all")
    res = _cli(["train", "--cohort", str(bad), "--time-col", "t", "--event-col", "e",
                "--treatment-col", "a"], tmp_path)
    assert res.returncode == 2 and "could not be read as parquet" in res.stderr
    assert "Traceback" not in res.stderr
    xls = tmp_path / "cohort.xlsx"
    xls.write_text("x")
    res = _cli(["train", "--cohort", str(xls), "--time-col", "t", "--event-col", "e",
                "--treatment-col", "a"], tmp_path)
    assert res.returncode == 2 and "expected .csv or .parquet" in res.stderr
