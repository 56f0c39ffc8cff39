"""score stage: rankings, evidence, contraindications, drift, idempotency, accuracy vs truth.

The board is built from small gold/silver tables written here and a REAL fitted
TreatmentResponseModel (pipelines.models) trained on a simulated cohort with planted
biomarker-by-treatment effects, so the rankings can be checked against the true RMST.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from pipelines.catalog import regimen_catalog
from pipelines.lakehouse import delta
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError
from pipelines.lakehouse.privacy import pseudonymise
from pipelines.lakehouse.settings import Settings
from pipelines.ranking import drift, steps
from pipelines.ranking.accuracy import load_oracle, ranking_accuracy
from pipelines.ranking.option_rules import rule_book
from pipelines.ranking.stage import read_review_list, score

BOARD = "2026-12-03"
KEY = Settings().pseudonym_key
BIOMARKER_MODIFIERS = ["egfr_mut", "kras_g12c", "pdl1_high", "pdl1_tps", "tmb"]
# Generator PHI (fake): must never appear in analyst-facing tables or the default report.
PHI_NAMES = ["Marguerite Okonkwo-Lindqvist", "Bartholomew Fairweather-Nakamura"]
PHI_MRNS = ["MRN-88172635", "MRN-55510293"]
PHI_DOBS = ["1951-04-17", "1948-11-02"]


# ============================================================================ the board
FEATURE_COLUMNS = ["patient_key", "index_date", "cancer_type", "sex", "age_at_diagnosis", "stage",
                   "ecog", "charlson_index", "egfr_mut", "kras_g12c", "pdl1_tps", "pdl1_high",
                   "tmb", "treatment", "os_months", "os_event"]
MODELS_CONFIG = {"families": ["coxph"], "n_bootstrap": 5, "n_policy_bootstrap": 20}


def source_id(i: int, prefix: str = "PT") -> str:
    return f"{prefix}{i:06d}"


def board_frames(n: int = 400, seed: int = 4, age_shift: float = 0.0, n_train: int = 0,
                 prefix: str = "PT") -> dict:
    """Gold/silver rows: ``n`` NSCLC patients to score (no treatment or outcome yet), one with
    an uncatalogued cancer type, and optionally ``n_train`` treated patients with outcomes
    (simulated with planted biomarker-by-treatment effects) to train the champion on."""
    from pipelines.models.simulate import simulate_cohort

    feats, oracle, _ = simulate_cohort(n, seed=seed, key_prefix="SC")
    ids = {old: source_id(i, prefix) for i, old in enumerate(feats["patient_key"])}
    keys = {old: pseudonymise(sid, KEY) for old, sid in ids.items()}
    oracle = oracle.assign(patient_id=oracle["patient_key"].map(ids),
                           patient_key=oracle["patient_key"].map(keys))
    feats = feats.assign(patient_key=feats["patient_key"].map(keys),
                         age_at_diagnosis=feats["age_at_diagnosis"] + age_shift,
                         index_date=dt.date(2026, 11, 1), treatment=None, os_months=np.nan,
                         os_event=np.nan)
    odd = feats.iloc[[0]].assign(patient_key=pseudonymise(prefix + "999999", KEY),
                                 cancer_type="GBM")
    parts = [feats, odd]
    if n_train:
        train, _, _ = simulate_cohort(n_train, seed=seed + 1000, key_prefix="TR")
        train = train.assign(
            patient_key=[pseudonymise(source_id(i, "TR"), KEY) for i in range(n_train)],
            index_date=[dt.date(2019, 1, 1) + dt.timedelta(days=int(i % 2000))
                        for i in range(n_train)])
        parts.append(train)
    all_feats = pd.concat(parts, ignore_index=True)
    board = feats["patient_key"].tolist()
    egfr = feats.loc[feats["egfr_mut"], "patient_key"].tolist()
    kras = feats.loc[feats["kras_g12c"], "patient_key"].tolist()

    kb = []
    for k in egfr:
        kb.append((k, "EGFR", "L858R", "Lung Non-small Cell Carcinoma", "Osimertinib",
                   "osimertinib", "A", "sensitivity", True,
                   "TAGRISSO (osimertinib) US prescribing information; FLAURA, PMID 29151359",
                   "2026.11", 0.34))
    for k in kras:
        kb.append((k, "KRAS", "G12C", "Lung Non-small Cell Carcinoma", "Sotorasib",
                   None, "B", "sensitivity", True, "CodeBreaK 100, PMID 34096690", "2026.11",
                   0.21))
        kb.append((k, "KRAS", "G12C", "Lung Non-small Cell Carcinoma", "Sotorasib",
                   "sotorasib", "A", "sensitivity", True,
                   "LUMAKRAS (sotorasib) US prescribing information", "2026.11", 0.21))
        kb.append((k, "STK11", "loss", "Lung Non-small Cell Carcinoma", "Pembrolizumab",
                   None, "C", "resistance", False, "Skoulidis et al., PMID 29773717",
                   "2026.11", 0.4))
    actionable = pd.DataFrame(kb, columns=[
        "patient_key", "gene", "alteration", "disease", "therapy", "regimen", "evidence_level",
        "direction", "on_label", "citation", "kb_version", "vaf"])
    kb_ids = {"Osimertinib A": "fda-osimertinib-egfr-l858r", "Sotorasib B": "EID11855",
              "Sotorasib A": "fda-sotorasib-kras-g12c-nsclc", "Pembrolizumab C": "EID7213"}
    actionable["evidence_ids"] = [
        [kb_ids[f"{t} {lvl}"]]
        for t, lvl in zip(actionable["therapy"], actionable["evidence_level"], strict=True)]

    ild, autoimmune, noted, negated = egfr[0], egfr[1], egfr[2], egfr[3]
    com = pd.DataFrame({"patient_key": board, "index_date": dt.date(2026, 11, 1),
                        "cci_copd": [k == ild for k in board], "cci_chf": False,
                        "charlson_index": feats["charlson_index"].astype(int).tolist(),
                        "elixhauser_vw": 3,
                        "ci_ild": [k == ild for k in board],
                        "ci_autoimmune": [k == autoimmune for k in board],
                        "ci_renal": pd.Series([None] * len(board), dtype=object)})
    findings = pd.DataFrame([
        ("f1", noted, "n1", "oncology progress", dt.date(2026, 10, 1), "pneumonitis",
         "adverse_event", None, "historical", "history", 10, 21,
         "History of grade 3 pneumonitis on prior therapy."),
        ("f2", negated, "n2", "imaging", dt.date(2026, 10, 3), "pneumonitis", "adverse_event",
         None, "negated", "impression", 3, 14, "No pneumonitis."),
        ("f3", egfr[0], "n3", "pathology", dt.date(2026, 9, 20), "EGFR L858R", "biomarker",
         None, "affirmed", "results", 0, 11, "EGFR exon 21 L858R detected."),
    ], columns=["finding_id", "patient_key", "note_id", "note_type", "note_date", "concept",
                "category", "value", "context", "section", "start", "end", "snippet"])
    planted = pd.concat([
        feats.loc[feats["egfr_mut"], ["patient_key"]].assign(treatment="osimertinib"),
        feats.loc[feats["kras_g12c"] & ~feats["pdl1_high"], ["patient_key"]].assign(
            treatment="sotorasib")])
    review = [*ids.values(), prefix + "999999"]
    return {"features": all_feats, "oracle": oracle, "actionable": actionable,
            "comorbidities": com, "findings": findings, "planted": planted, "ids": ids,
            "review": review,
            "special": {"ild": ild, "autoimmune": autoimmune, "noted": noted,
                        "negated": negated, "kras": kras[0], "odd": odd["patient_key"].iloc[0]}}


def write_board(spark, settings: Settings, frames: dict) -> None:
    feats = frames["features"]
    spark_feats = spark.createDataFrame(
        feats[FEATURE_COLUMNS].astype(object).where(feats[FEATURE_COLUMNS].notna(), None),
        "patient_key string, index_date date, cancer_type string, sex string, "
        "age_at_diagnosis double, stage string, ecog double, charlson_index double, "
        "egfr_mut boolean, kras_g12c boolean, pdl1_tps double, pdl1_high boolean, tmb double, "
        "treatment string, os_months double, os_event int")
    delta.write_table(spark, delta.with_comments(spark_feats, {
        "egfr_mut": "Any activating EGFR mutation", "pdl1_high": "PD-L1 TPS >= 50%"}),
        settings.table("gold", "patient_features"), mode="overwrite")
    spark_act = spark.createDataFrame(
        frames["actionable"].astype(object).where(frames["actionable"].notna(), None),
        "patient_key string, gene string, alteration string, disease string, therapy string, "
        "regimen string, evidence_level string, direction string, on_label boolean, "
        "citation string, kb_version string, vaf double, evidence_ids array<string>")
    delta.write_table(spark, spark_act, settings.table("silver", "actionable_alterations"),
                      mode="overwrite")
    com = frames["comorbidities"]
    spark_com = spark.createDataFrame(
        com.astype(object).where(com.notna(), None),
        "patient_key string, index_date date, cci_copd boolean, cci_chf boolean, "
        "charlson_index int, elixhauser_vw int, ci_ild boolean, ci_autoimmune boolean, "
        "ci_renal boolean")
    delta.write_table(spark, spark_com, settings.table("silver", "comorbidities"),
                      mode="overwrite")
    fnd = frames["findings"]
    spark_fnd = spark.createDataFrame(
        fnd.astype(object).where(fnd.notna(), None),
        "finding_id string, patient_key string, note_id string, note_type string, "
        "note_date date, concept string, category string, value string, context string, "
        "section string, start int, `end` int, snippet string")
    delta.write_table(spark, spark_fnd, settings.table("silver", "note_findings"),
                      mode="overwrite")


def board_settings(root, **kw) -> Settings:
    return Settings(lakehouse=root / "lakehouse", board_date=BOARD, shuffle_partitions=2,
                    spark_master="local[2]", reports_dir=str(root / "reports"),
                    sections={"models": dict(MODELS_CONFIG)}, **kw)


def train_champion(spark, settings: Settings):
    """The real train stage: fits, evaluates, logs to MLflow and sets the champion alias."""
    from pipelines.models.stage import train_models

    train_models(spark, settings)


@pytest.fixture(scope="module")
def board(spark, tmp_path_factory):
    """One trained champion and one scored board shared by this module's tests."""
    from pipelines.models.registry import load_champion

    root = tmp_path_factory.mktemp("ranking-board")
    settings = board_settings(root)
    frames = board_frames(n_train=6000)
    write_board(spark, settings, frames)
    train_champion(spark, settings)
    review = root / "review.txt"
    review.write_text("\n".join(frames["review"]) + "\n")
    run = score(spark, settings, patients_file=str(review))
    rankings = delta.read_table(spark, settings.table("gold", "treatment_rankings")).toPandas()
    return {"settings": settings, "frames": frames, "run": run, "rankings": rankings,
            "review": review, "champion": load_champion(settings)}


@pytest.fixture()
def shared_models(board, tmp_path):
    """Settings for a fresh lakehouse that scores with the board's MLflow champion."""
    return board_settings(tmp_path, mlflow_tracking_uri=board["settings"].tracking_uri)


# ============================================================================ stage
def test_every_candidate_is_ranked_and_counts_reconcile(spark, board):
    r, frames, run = board["rankings"], board["frames"], board["run"]
    candidates = [x.name for x in regimen_catalog().for_cancer_type("NSCLC")]
    assert len(r) == 400 * len(candidates)
    assert set(r["patient_key"]) == set(frames["oracle"]["patient_key"])
    assert set(r["treatment"]) == set(candidates)
    # Ranked options are numbered 1..k; the others have no number and say why.
    ranked = r[r["rank"].notna()]
    sizes = ranked.groupby("patient_key").size()
    assert (ranked.groupby("patient_key")["rank"].apply(sorted).map(tuple)
            == sizes.map(lambda k: tuple(range(1, k + 1)))).all()
    assert (r["rank"].isna() == (r["rank_status"] != "ranked")).all()
    assert set(r["rank_status"]) <= {"ranked", "insufficient comparable patients",
                                     "too few treated patients in training"}
    assert set(ranked["patient_key"]) == set(r["patient_key"])  # a world with overlap
    # every row names the knowledge-base release of silver.actionable_alterations
    assert set(r["kb_version"]) == set(frames["actionable"]["kb_version"])
    # The uncatalogued cancer type is quarantined with its reason, not dropped.
    q = delta.read_table(spark, board["settings"].table("gold", "quarantine_treatment_rankings"))
    q = q.toPandas()
    assert q["rule"].tolist() == ["no_candidate_treatments"]
    assert json.loads(q["record"].iloc[0])["patient_key"] == frames["special"]["odd"]
    assert run.rows_in == run.rows_written + run.rows_quarantined == len(r) + 1
    jr = delta.read_table(spark, board["settings"].table("ops", "job_runs")).toPandas()
    assert jr.loc[jr["job"] == "score", "status"].tolist() == ["succeeded"]


def test_rank_follows_predicted_rmst_and_columns_match_the_contract(board):
    r, champion = board["rankings"], board["champion"]
    contract = ["patient_key", "treatment", "rank", "predicted_rmst", "rmst_lower", "rmst_upper",
                "surv_12", "surv_12_lower", "surv_12_upper", "surv_24", "surv_24_lower",
                "surv_24_upper", "benefit_vs_soc", "evidence_level", "evidence_citation",
                "contraindications", "overlap_warning", "model_name", "model_version",
                "mlflow_run_id", "scored_at", "board_date"]
    assert set(contract) <= set(r.columns)
    # Independent re-derivation from the champion's own predictions.
    feats = board["frames"]["features"]
    feats = feats[feats["patient_key"].isin(set(r["patient_key"]))].reset_index(drop=True)
    pred = champion.model.predict_treatments(feats)
    # Abstention, re-derived from the model's own numbers and the default [ranking] rule:
    # propensity below 10%, fewer than 5 similar treated patients, or a small training arm.
    model = champion.model
    small = pred["treatment"].map(lambda t: model.treatment_counts_.get(t, 0) < 20
                                  or model.arm_events_.get(t, 0) < 10)
    # the exceptions to the RMST order: a label requirement not met is not ranked at all, an
    # unknown one comes after what can be given now
    status = r.set_index(["patient_key", "treatment"])["label_status"].fillna("")
    not_met = [status.get((k, t), "").startswith("requirement not met")
               for k, t in zip(pred["patient_key"], pred["treatment"], strict=True)]
    pred["unranked"] = ((pred["propensity"] < 0.10) | (pred["n_similar_treated"] < 5) | small
                        | not_met)
    tier = status.map(lambda s: 1 if s.startswith("requirement unknown") else 0)
    pred["tier"] = [int(tier.get((k, t), 0)) for k, t in
                    zip(pred["patient_key"], pred["treatment"], strict=True)]
    pred = pred.sort_values(["patient_key", "unranked", "tier", "predicted_rmst", "rmst_lower",
                             "treatment"], ascending=[True, True, True, False, False, True])
    pred["rank"] = (pred.groupby("patient_key").cumcount() + 1).where(~pred["unranked"])
    merged = r.merge(pred, on=["patient_key", "treatment"], suffixes=("", "_m"))
    assert len(merged) == len(r)
    assert 0 < merged["unranked"].mean() < 0.75  # the rule abstains on some options
    assert (merged["rank"].isna() == merged["unranked"]).all()
    assert (merged["rank"].fillna(0) == merged["rank_m"].fillna(0)).all()
    assert not merged.loc[merged["rank"] == 1, "overlap_warning"].any()
    np.testing.assert_allclose(merged["predicted_rmst"], merged["predicted_rmst_m"])
    soc = regimen_catalog().standard_of_care("NSCLC").name
    soc_ranked = merged[(merged["treatment"] == soc) & merged["rank"].notna()]
    soc_rmst = soc_ranked.set_index("patient_key")["predicted_rmst"]
    expected = (merged["predicted_rmst"] - merged["patient_key"].map(soc_rmst)).where(
        merged["rank"].notna())
    np.testing.assert_allclose(merged["benefit_vs_soc"].astype(float), expected.astype(float))
    assert (soc_ranked["benefit_vs_soc"] == 0).all()
    # paired intervals hold their point; the chance of rank 1 sums to 1 over a patient's options
    b = merged[merged["benefit_lower"].notna()]
    assert len(b) and ((b["benefit_lower"] <= b["benefit_vs_soc"] + 1e-9)
                       & (b["benefit_vs_soc"] <= b["benefit_upper"] + 1e-9)).all()
    np.testing.assert_allclose(merged.groupby("patient_key")["prob_rank1"].sum(), 1.0)
    assert set(merged["n_refits"]) == {champion.model.n_replicates}
    assert (r["rmst_lower"] <= r["predicted_rmst"] + 1e-9).all()
    assert (r["predicted_rmst"] <= r["rmst_upper"] + 1e-9).all()
    assert (r["predicted_rmst"] <= 24.0 + 1e-9).all()
    assert set(r["model_version"]) == {champion.version}
    assert set(r["mlflow_run_id"]) == {champion.run_id}
    assert set(r["model_name"]) == {champion.name}
    assert set(r["board_date"].astype(str)) == {BOARD}


def test_rankings_recover_the_planted_truth(board):
    """Acceptance: policy value of the top choice and planted-alteration top-1 share."""
    frames = board["frames"]
    acc = ranking_accuracy(board["rankings"], frames["oracle"], frames["planted"])
    assert acc["n_patients"] == 400 and acc["unmatched_top1"] == 0
    assert acc["n_planted"] > 50
    assert acc["normalized_policy_value"] >= 0.8, acc
    assert acc["planted_top1_share"] >= 0.9, acc


def test_evidence_and_contraindications_are_shown_beside_never_applied(board):
    r = board["rankings"].set_index(["patient_key", "treatment"])
    sp = board["frames"]["special"]
    osi = r.loc[(sp["ild"], "osimertinib")]
    assert osi["evidence_level"] == "A" and "PMID 29151359" in osi["evidence_citation"]
    assert osi["evidence_alteration"] == "EGFR L858R" and osi["evidence_on_label"]
    # KRAS: the level-A row wins over the level-B row matched by drug name.
    soto = r.loc[(sp["kras"], "sotorasib")]
    assert soto["evidence_level"] == "A" and "LUMAKRAS" in soto["evidence_citation"]
    assert list(osi["evidence_ids"]) == ["fda-osimertinib-egfr-l858r"]
    assert list(soto["evidence_ids"]) == ["fda-sotorasib-kras-g12c-nsclc"]
    assert pd.isna(r.loc[(sp["kras"], "platinum_pemetrexed")]["evidence_level"])
    # Coded ILD speaks against osimertinib and pembrolizumab only.
    ild = {t: list(r.loc[(sp["ild"], t)]["contraindications"]) for t in
           ("osimertinib", "pembrolizumab", "platinum_pemetrexed", "sotorasib")}
    assert any(c.startswith("Interstitial lung disease") and "[record]" in c
               for c in ild["osimertinib"])
    assert any(c.startswith("Interstitial lung disease") for c in ild["pembrolizumab"])
    assert ild["platinum_pemetrexed"] == [] and ild["sotorasib"] == []
    auto = list(r.loc[(sp["autoimmune"], "pembrolizumab")]["contraindications"])
    assert any(c.startswith("Autoimmune disease") for c in auto)
    # A historical pneumonitis in the notes fires; a negated one never does.
    noted = list(r.loc[(sp["noted"], "pembrolizumab")]["contraindications"])
    assert any("notes: pneumonitis (historical)" in c for c in noted)
    neg = r.xs(sp["negated"], level="patient_key")
    assert all(len(c) == 0 for c in neg["contraindications"])
    # Knowledge-base resistance (STK11 vs pembrolizumab) is listed.
    kras_pembro = list(r.loc[(sp["kras"], "pembrolizumab")]["contraindications"])
    assert any("STK11 loss: resistance marker for Pembrolizumab" in c for c in kras_pembro)
    # Never applied: the rank order is still the predicted-RMST order within each label tier
    # (can be given now; requirement unknown; a requirement not met is not ranked).
    for key in (sp["ild"], sp["autoimmune"], sp["noted"], sp["kras"]):
        g = board["rankings"][(board["rankings"]["patient_key"] == key)
                              & board["rankings"]["rank"].notna()].sort_values("rank")
        status = g["label_status"].fillna("")
        assert not status.str.startswith("requirement not met").any()
        tier = status.map(lambda s: 1 if s.startswith("requirement unknown") else 0)
        assert list(tier) == sorted(tier)
        for t in set(tier):
            assert g[tier == t]["predicted_rmst"].is_monotonic_decreasing


def test_drift_is_written_for_the_board_date(spark, board):
    d = delta.read_table(spark, board["settings"].table("gold", "drift")).toPandas()
    assert set(d["board_date"].astype(str)) == {BOARD}
    assert set(d["feature"]) >= {"age_at_diagnosis", "ecog", "egfr_mut", "tmb"}
    assert not {"patient_key", "os_months", "os_event", "treatment"} & set(d["feature"])
    # Same population as training: nothing drifts.
    assert not d["drifted"].any(), d[d["drifted"]]
    age = d.set_index("feature").loc["age_at_diagnosis"]
    assert age["kind"] == "numeric" and 0 <= age["ks_pvalue"] <= 1
    assert set(d["model_version"]) == {board["champion"].version}


@pytest.mark.slow  # a whole re-run of score (about 20 s), like the other re-runs
def test_rescoring_the_same_board_changes_nothing(spark, board):
    settings = board["settings"]
    ref = settings.table("gold", "treatment_rankings")
    before = delta.read_table(spark, ref).toPandas()
    drift_before = delta.read_table(spark, settings.table("gold", "drift")).toPandas()
    score(spark, settings, patients_file=str(board["review"]))
    after = delta.read_table(spark, ref).toPandas()
    cols = [c for c in before.columns if c != "contraindications"]
    key = ["patient_key", "treatment", "board_date"]
    b = before.sort_values(key).reset_index(drop=True)
    a = after.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(b[cols], a[cols])
    assert b["contraindications"].map(list).tolist() == a["contraindications"].map(list).tolist()
    drift_after = delta.read_table(spark, settings.table("gold", "drift")).toPandas()
    pd.testing.assert_frame_equal(drift_before.sort_values("feature").reset_index(drop=True),
                                  drift_after.sort_values("feature").reset_index(drop=True))


def test_review_list_selects_patients_and_quarantines_unknown_ids(spark, shared_models, tmp_path):
    frames = board_frames(n=30, seed=11, prefix="RV")
    write_board(spark, shared_models, frames)
    ids = list(frames["ids"].values())
    chosen_key = pseudonymise(ids[2], KEY)
    review = tmp_path / "review.csv"
    review.write_text(f"patient_id\n{ids[0]}\n{ids[1]}\n{chosen_key}\nPT424242\n")
    run = score(spark, shared_models.replace(board_date="2026-12-10"), patients_file=str(review))
    r = delta.read_table(spark, shared_models.table("gold", "treatment_rankings")).toPandas()
    assert set(r["patient_key"]) == {pseudonymise(ids[0], KEY), pseudonymise(ids[1], KEY),
                                     chosen_key}
    q = delta.read_table(spark, shared_models.table("gold", "quarantine_treatment_rankings"))
    q = q.toPandas()
    assert q["rule"].tolist() == ["review_patient_not_found"]
    record = q["record"].iloc[0]
    assert "PT424242" not in record and pseudonymise("PT424242", KEY) in record
    assert run.rows_in == run.rows_written + run.rows_quarantined == 3 * 4 + 1


def test_without_a_review_list_every_patient_is_scored_and_drift_flags_age(spark, shared_models):
    frames = board_frames(n=150, seed=12, age_shift=12.0, prefix="OL")
    write_board(spark, shared_models, frames)
    score(spark, shared_models.replace(board_date="2026-12-17"))
    r = delta.read_table(spark, shared_models.table("gold", "treatment_rankings")).toPandas()
    assert r["patient_key"].nunique() == 150
    d = delta.read_table(spark, shared_models.table("gold", "drift")).toPandas()
    d = d.set_index("feature")
    assert d.loc["age_at_diagnosis", "drifted"]
    assert d.loc["age_at_diagnosis", "psi"] > 0.25
    assert d.loc["age_at_diagnosis", "ks_pvalue"] < 1e-6
    assert not d.loc["egfr_mut", "drifted"]


def test_bad_board_date_missing_review_list_and_no_champion_are_clear_errors(spark, settings,
                                                                             tmp_path):
    from pipelines.models.registry import NoChampionError

    with pytest.raises(ConfigError, match="ISO date"):
        score(spark, settings.replace(board_date="03/12/2026"))
    with pytest.raises(InputNotFoundError, match="Review list"):
        score(spark, settings.replace(board_date=BOARD), patients_file=str(tmp_path / "no.txt"))
    with pytest.raises(NoChampionError):
        score(spark, settings.replace(board_date=BOARD))


# ============================================================================ steps (small frames)
def test_rank_ties_go_to_the_lower_bound_then_the_name(spark):
    df = spark.createDataFrame(
        [("p", "b", 10.0, 8.0), ("p", "a", 10.0, 8.0), ("p", "c", 10.0, 9.0), ("p", "d", None, 1.0),
         ("q", "a", 5.0, 1.0)],
        "patient_key string, treatment string, predicted_rmst double, rmst_lower double")
    out = {(r["patient_key"], r["treatment"]): r["rank"]
           for r in df.transform(steps.with_rank).collect()}
    assert out == {("p", "c"): 1, ("p", "a"): 2, ("p", "b"): 3, ("p", "d"): 4, ("q", "a"): 1}


def test_therapy_strings_split_into_drugs(spark):
    df = spark.createDataFrame([("Dabrafenib, Trametinib",), ("Encorafenib + Cetuximab",),
                                ("nivolumab and ipilimumab",), (None,)], "therapy string")
    got = [r[0] for r in df.select(steps.therapy_drugs(F.col("therapy"))).collect()]
    assert got == [["dabrafenib", "trametinib"], ["encorafenib", "cetuximab"],
                   ["nivolumab", "ipilimumab"], []]


def test_resistance_marker_speaks_against_every_regimen_with_the_drug(spark):
    cat = steps.catalog_frame(spark, regimen_catalog())
    cands = spark.createDataFrame([("p", "COADREAD")], "patient_key string, cancer_type string")
    cands = steps.candidate_pairs(cands, cat)
    kb = spark.createDataFrame(
        [("p", "KRAS", "G12D", "Cetuximab", None, "A", "resistance", True, "PMID 18316791"),
         ("p", "BRAF", "V600E", "Encorafenib, Cetuximab", None, "A", "sensitivity", True,
          "BEACON CRC, PMID 31566309")],
        "patient_key string, gene string, alteration string, therapy string, regimen string, "
        "evidence_level string, direction string, on_label boolean, citation string")
    res = {r["treatment"] for r in steps.resistance_reasons(cands, kb, cat).collect()}
    assert res == {"folfox_cetuximab", "encorafenib_cetuximab"}
    ev = {r["treatment"]: r["evidence_level"]
          for r in steps.evidence_for_candidates(cands, kb, cat, rule_book()).collect()}
    assert ev == {"encorafenib_cetuximab": "A"}


def test_level_a_resistance_in_the_patients_type_ranks_an_option_after_the_others(spark):
    cat = steps.catalog_frame(spark, regimen_catalog())
    cands = steps.candidate_pairs(spark.createDataFrame(
        [("p", "COADREAD"), ("q", "COADREAD")], "patient_key string, cancer_type string"), cat)
    kb = spark.createDataFrame(
        # p: approval-grade level A in colorectal cancer; q: the same marker at level C and
        # a level-A statement for another tumour type (on_label false): neither moves a rank
        [("p", "KRAS", "G12D", "Cetuximab", None, "A", "resistance", True, "ERBITUX PI"),
         ("q", "KRAS", "G12D", "Cetuximab", None, "C", "resistance", True, "case study"),
         ("q", "NRAS", "Q61K", "Cetuximab", None, "A", "resistance", False, "other type")],
        "patient_key string, gene string, alteration string, therapy string, regimen string, "
        "evidence_level string, direction string, on_label boolean, citation string")
    flagged = {(r["patient_key"], r["treatment"])
               for r in steps.level_a_resistance(cands, kb, cat).collect()}
    assert flagged == {("p", "folfox_cetuximab"), ("p", "encorafenib_cetuximab")}
    preds = spark.createDataFrame(
        [("p", "folfox_cetuximab", 30.0, 25.0, True), ("p", "folfox", 20.0, 15.0, None)],
        "patient_key string, treatment string, predicted_rmst double, rmst_lower double, "
        "resistance_level_a boolean")
    ranks = {r["treatment"]: (r["rank"], r["rank_status"])
             for r in preds.transform(steps.with_rank).collect()}
    # despite 10 more months predicted, shown with its reason and never ranked
    assert ranks == {"folfox": (1, "ranked"),
                     "folfox_cetuximab": (None, "level-A resistance marker")}


def test_unknown_flags_never_fire(spark):
    cat = steps.catalog_frame(spark, regimen_catalog())
    cands = steps.candidate_pairs(spark.createDataFrame(
        [("p", "BRCA"), ("q", "BRCA")], "patient_key string, cancer_type string"), cat)
    com = spark.createDataFrame([("p", None), ("q", 1)], "patient_key string, ci_chf int")
    out = steps.contraindication_reasons(cands, com, None, cat, rule_book()).collect()
    assert {(r["patient_key"], r["treatment"]) for r in out} == {
        ("q", "anthracycline_taxane"), ("q", "trastuzumab_pertuzumab_docetaxel")}


def test_read_review_list_formats(tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("# board\nPT000001\n\nPT000001\n3fa2c0d1e4b5a6978812\tnote\n")
    assert read_review_list(f) == ["PT000001", "3fa2c0d1e4b5a6978812"]
    f.write_text("# nothing\n")
    with pytest.raises(ConfigError):
        read_review_list(f)


# ============================================================================ drift and evaluation
def test_psi_matches_its_definition():
    train = pd.Series(["a"] * 50 + ["b"] * 50)
    scored = pd.Series(["a"] * 80 + ["b"] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert drift.categorical_psi(train, scored) == pytest.approx(expected)
    # A level never seen in training gets EPS, not a division by zero.
    assert np.isfinite(drift.categorical_psi(train, pd.Series(["c"] * 10)))


def test_small_boards_are_not_flagged_on_psi_alone():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2000), "flag": rng.random(2000) < 0.3})
    few = pd.DataFrame({"x": rng.normal(0.3, 1, 8), "flag": [True] * 8})
    out = drift.feature_drift(train, few).set_index("feature")
    assert out.loc["flag", "psi"] > 0.25 and not out.loc["flag", "drifted"]
    assert out.loc["flag", "kind"] == "categorical" and np.isnan(out.loc["flag", "ks_pvalue"])


def test_policy_value_bounds():
    rng = np.random.default_rng(1)
    truth = pd.DataFrame([(f"p{i}", t, rng.uniform(5, 20)) for i in range(50)
                          for t in ("a", "b", "c")], columns=["patient_key", "treatment",
                                                               "true_rmst"])
    best = truth.assign(rank=truth.groupby("patient_key")["true_rmst"].rank(ascending=False))
    worst = truth.assign(rank=truth.groupby("patient_key")["true_rmst"].rank(ascending=True))
    assert ranking_accuracy(best, truth)["normalized_policy_value"] == pytest.approx(1.0)
    assert ranking_accuracy(worst, truth)["normalized_policy_value"] < 0
    # A top choice the oracle does not know counts as the worst candidate.
    odd = best.copy()
    odd.loc[odd["rank"] == 1, "treatment"] = "zz"
    res = ranking_accuracy(odd, truth)
    assert res["unmatched_top1"] == 50 and res["value"] == pytest.approx(
        truth.groupby("patient_key")["true_rmst"].min().mean())


def test_load_oracle_pseudonymises_source_ids(tmp_path):
    (tmp_path / "treatment_oracle.csv").write_text(
        "patient_id,treatment,true_rmst\nPT000001,osimertinib,17.5\n")
    o = load_oracle(tmp_path, KEY)
    assert o["patient_key"].tolist() == [pseudonymise("PT000001", KEY)]
    with pytest.raises(InputNotFoundError):
        load_oracle(tmp_path / "nope", KEY)


def test_planted_pairs_come_from_the_generators_truth(tmp_path):
    from pipelines.ranking.accuracy import planted_pairs
    from pipelines.synth import generate_cohort

    generate_cohort(tmp_path / "cohort", patients=30, seed=1)
    truth = tmp_path / "cohort" / "truth"
    pairs = planted_pairs(truth, KEY)
    oracle = load_oracle(truth, KEY)
    patients = pd.read_csv(truth / "patients.csv", dtype=str, keep_default_na=False)
    assert len(pairs) > 0
    # Every matching therapy is a candidate of that patient, and the alteration was planted.
    assert len(pairs.merge(oracle, on=["patient_key", "treatment"])) == len(pairs)
    drivers = patients.set_index("patient_id")
    for r in pairs.itertuples():
        planted = drivers.loc[r.patient_id, "drivers"].split(";") + [
            drivers.loc[r.patient_id, "msi_status"]]
        assert r.alteration in planted
    # The oracle itself, used as a ranking, scores the maximum.
    best = oracle.assign(rank=oracle.groupby("patient_key")["true_rmst"].rank(
        ascending=False, method="first"))
    assert ranking_accuracy(best, oracle, pairs)["normalized_policy_value"] == pytest.approx(1.0)
